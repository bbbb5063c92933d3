"""Annotation parsing against the real AVE metadata and hand-written CSV files."""
from __future__ import annotations


import h5py
import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.data.annotations import load_annotations, load_ave_annotations, load_csv_annotations
from tests._paths import AVE_DIR

AVE = AVE_DIR

# Class order by first appearance, typed from the file by hand (not computed by the code under test).
AVE_CLASSES = [
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane", "Race car, auto racing",
    "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute", "Ukulele", "Frying (food)", "Truck",
    "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus",
    "Chainsaw", "Cat", "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin", "background",
]


@pytest.fixture(scope="module")
def ave():
    return load_annotations(AVE / "Annotations.txt")


def test_reproduces_mil_labels_exactly(ave):
    with h5py.File(AVE / "mil_labels.h5", "r") as handle:
        reference = handle["avadataset"][()]
    labels = ave.video_label_matrix()
    assert labels.dtype == reference.dtype == np.float32
    assert labels.shape == reference.shape == (4143, 29)
    assert np.array_equal(labels, reference)


def test_class_order_is_first_appearance(ave):
    assert ave.classes == AVE_CLASSES
    assert ave.background_index == 28


def test_segment_labels_of_real_rows(ave):
    ids = ave.video_ids
    # row 1: Church bell&MH3m4AwEcRY&good&6&8
    assert ids[1] == "MH3m4AwEcRY"
    assert ave.segment_labels("MH3m4AwEcRY").tolist() == [28] * 6 + [0, 0] + [28, 28]
    # row 0: Church bell 0..10: all ten seconds are the event
    assert ave.segment_labels("RUhOCu3LNXM").tolist() == [0] * 10
    # row 26: Church bell&VWi2ENBuTbw&good&0&0 (empty event): all background, video still labelled Church bell
    assert ave.segment_labels("VWi2ENBuTbw").tolist() == [28] * 10
    assert ave.video_label("VWi2ENBuTbw").nonzero()[0].tolist() == [0]
    # row 1782: Frying (food)&AIs4gx9RVTs&good&6&10
    assert ave.segment_labels("AIs4gx9RVTs").tolist() == [28] * 6 + [10] * 4
    # row 3724: Rodents, rats, mice&ByNj4TXWBEQ&good&0&4
    assert ave.segment_labels("ByNj4TXWBEQ").tolist() == [25] * 4 + [28] * 6
    # last row: Mandolin&0IklLP7_kBw&good&4&10; and the segment count is a parameter
    assert ave.segment_labels(ids[4142]).tolist() == [28] * 4 + [27] * 6
    assert ave.segment_labels(ids[4142], segments=12).tolist() == [28] * 4 + [27] * 6 + [28] * 2


def test_repeated_ave_ids_keep_every_row(ave):
    # -1qyr-IzqKY is on line 1691 (Ukulele) and line 3880 (Accordion)
    assert len(ave.video_ids) == len(set(ave.video_ids)) == 4143
    assert ave.video_ids[1690] == "-1qyr-IzqKY" and ave.video_ids[3879] == "-1qyr-IzqKY#2"
    assert ave.source_id("-1qyr-IzqKY#2") == "-1qyr-IzqKY"
    assert ave.events("-1qyr-IzqKY")[0].label == "Ukulele"
    assert ave.events("-1qyr-IzqKY#2")[0].label == "Accordion"


def test_ave_header_bom_crlf_and_background_rows(tmp_path):
    path = tmp_path / "Annotations.txt"
    text = ("Category&VideoID&Quality&StartTime&EndTime\r\n"
            "Frying (food)&abc&good&2&5\r\n"
            "background&xyz&good&0&0\r\n"
            "Rodents, rats, mice&def&good&0&10\r\n\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    annotations = load_annotations(path)
    assert annotations.classes == ["Frying (food)", "Rodents, rats, mice", "background"]
    assert annotations.video_ids == ["abc", "xyz", "def"]
    assert annotations.segment_labels("abc").tolist() == [2, 2, 0, 0, 0, 2, 2, 2, 2, 2]
    assert annotations.segment_labels("xyz").tolist() == [2] * 10
    assert annotations.video_label("xyz").tolist() == [0, 0, 1]


@pytest.mark.parametrize("line, message", [
    ("Bark&abc&good&5", "expected 5 '&'-separated fields"),
    ("Bark&abc&good&x&5", "StartTime 'x' is not a number"),
    ("Bark&abc&good&6&5", "need 0 <= StartTime <= EndTime"),
    ("&abc&good&1&5", "empty category"),
])
def test_ave_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "Annotations.txt"
    path.write_text(f"Bark&ok&good&0&10\n{line}\n")
    with pytest.raises(UserError) as err:
        load_ave_annotations(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


CSV_TEXT = """video_id,start,end,label
v1,0,3,dog
v1,5,7.5,"cat, small"
v2,,,
v3,2,4,dog
v3,3,6,dog
v4,0,10,background
"""


def test_csv_multiple_events_and_background_videos(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(CSV_TEXT)
    annotations = load_annotations(path)
    assert annotations.classes == ["dog", "cat, small", "background"]
    assert annotations.video_ids == ["v1", "v2", "v3", "v4"]
    # segment t belongs to an event when its centre t+0.5 lies in [start, end)
    assert annotations.segment_labels("v1").tolist() == [0, 0, 0, 2, 2, 1, 1, 2, 2, 2]  # 7.5 ends before centre 7.5
    assert annotations.segment_labels("v2").tolist() == [2] * 10
    assert annotations.segment_labels("v3").tolist() == [2, 2, 0, 0, 0, 0, 2, 2, 2, 2]
    assert annotations.segment_labels("v4").tolist() == [2] * 10
    assert annotations.video_label("v1").tolist() == [1, 1, 0]
    assert annotations.video_label("v2").tolist() == [0, 0, 1]


def test_csv_given_class_list_fixes_indices(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(CSV_TEXT)
    annotations = load_csv_annotations(path, classes=["bird", "cat, small", "dog", "background"])
    assert annotations.classes == ["bird", "cat, small", "dog", "background"]
    assert annotations.segment_labels("v1").tolist() == [2, 2, 2, 3, 3, 1, 1, 3, 3, 3]
    with pytest.raises(UserError, match=r"mine.csv:2: unknown label 'dog'"):
        load_csv_annotations(path, classes=["cat, small"])


@pytest.mark.parametrize("rows, message", [
    ("v1,3,3,dog", ":2: start 3 must be before end 3"),
    ("v1,4,2,dog", ":2: start 4 must be before end 2"),
    ("v1,-1,2,dog", ":2: start -1 is negative"),
    ("v1,a,2,dog", ":2: start 'a' is not a number"),
    ("v1,1,2", ":2: expected 4 fields, got 3"),
    (",1,2,dog", ":2: empty video_id"),
    ("v1,0,5,dog\nv1,4,6,cat", ":3: event 'cat' 4-6 of v1 overlaps 'dog' 0-5 from line 2"),
])
def test_csv_errors_name_file_and_line(tmp_path, rows, message):
    path = tmp_path / "bad.csv"
    path.write_text("video_id,start,end,label\n" + rows + "\n")
    with pytest.raises(UserError) as err:
        load_csv_annotations(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unrecognised_or_missing_files(tmp_path):
    with pytest.raises(UserError, match="header lacks column"):
        (tmp_path / "a.csv").write_text("video,start,end,label\nv,0,1,x\n")
        load_annotations(tmp_path / "a.csv")
    with pytest.raises(UserError, match="not an annotation file"):
        (tmp_path / "b.txt").write_text("hello world\n")
        load_annotations(tmp_path / "b.txt")
    with pytest.raises(UserError, match="not found"):
        load_annotations(tmp_path / "missing.txt")
    (tmp_path / "c.txt").write_text("video_id,start,end,label\nv,0,1,x\n")  # CSV content, .txt name
    assert load_annotations(tmp_path / "c.txt").classes == ["x", "background"]
