"""VGGSound-AVEL files (metadata CSV, category list, zipped label pickles): read exactly, refuse code, skip bad files."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from avepipe.data.annotations import load_annotations
from avepipe.data.vggsound import (VGGSoundFiles, load_vggsound, read_categories, read_flags,
                                   write_vggsound_files)
from avepipe.errors import UserError

CATEGORIES = ["dog barking", "playing cello", "train horning", "baby crying", "car engine"]


def _videos(n=12, seed=0):
    """Known per-second flags, including an all-0 and an all-1 video; splits cycle train/val/test."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        flags = rng.integers(0, 2, 10)
        if i == 0:
            flags[:] = 0
        if i == 1:
            flags[:] = 1
        out.append((f"yt{i:03d}_000030", CATEGORIES[i % len(CATEGORIES)], ("train", "val", "test")[i % 3], flags))
    return out


def _rezip(path, payload: bytes, name="label.pkl"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, payload)


def test_round_trip_labels_classes_and_splits_exact(tmp_path):
    videos = _videos()
    files = write_vggsound_files(tmp_path, videos, CATEGORIES)
    annotations = load_annotations(str(files))
    background = len(CATEGORIES)
    assert annotations.classes == [*CATEGORIES, "background"]
    assert annotations.video_ids == [v for v, *_ in videos]
    for video_id, category, split, flags in videos:
        expected = np.where(flags == 1, CATEGORIES.index(category), background)
        np.testing.assert_array_equal(annotations.segment_labels(video_id, 10), expected)
        weak = np.zeros(background + 1, np.float32)
        weak[CATEGORIES.index(category)] = 1          # the category even for the all-0 video
        np.testing.assert_array_equal(annotations.video_label(video_id), weak)
        assert video_id in annotations.splits[split]
    assert [len(annotations.splits[s]) for s in ("train", "val", "test")] == [4, 4, 4]
    assert annotations.problems == []


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.uint8, bool])
def test_flags_from_every_pickle_protocol_and_dtype(tmp_path, protocol, dtype):
    flags = np.array([[0, 1, 1, 0, 0, 0, 1, 1, 1, 0]], dtype=dtype)
    _rezip(tmp_path / "v.zip", pickle.dumps(flags, protocol=protocol))
    np.testing.assert_array_equal(read_flags(tmp_path / "v.zip"), [0, 1, 1, 0, 0, 0, 1, 1, 1, 0])


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_pickle_that_would_run_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCommand(f"touch {marker}"))
    _rezip(tmp_path / "evil.zip", payload)
    with pytest.raises(UserError) as err:
        read_flags(tmp_path / "evil.zip")
    assert str(err.value) == (f"{tmp_path / 'evil.zip'}: refusing to load {os.system.__module__}.system: "
                              f"label pickles may only hold numpy arrays")
    assert not marker.exists()
    # the same payload through plain pickle does run: the test would notice a permissive reader
    pickle.loads(payload)
    assert marker.exists()


def test_callable_writing_a_file_is_refused(tmp_path):
    marker = tmp_path / "written.txt"
    payload = pickle.dumps(_Exec(f"open({str(marker)!r}, 'w').write('x')"))
    _rezip(tmp_path / "evil.zip", payload)
    with pytest.raises(UserError, match=r"evil\.zip: refusing to load builtins\.exec"):
        read_flags(tmp_path / "evil.zip")
    assert not marker.exists()


class _Exec:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return exec, (self.source,)


def test_bad_label_files_are_reported_counted_and_skipped(tmp_path, capsys):
    videos = _videos(9)
    files = write_vggsound_files(tmp_path, videos, CATEGORIES)
    labels = files.labels_dir
    (labels / "yt000_000030.zip").unlink()                                       # missing
    (labels / "yt001_000030.zip").write_bytes(b"not a zip")                       # not a zip
    _rezip(labels / "yt002_000030.zip", pickle.dumps(np.zeros((1, 10)) + 2))       # values not 0/1
    _rezip(labels / "yt003_000030.zip", pickle.dumps(np.zeros((3, 10))))           # wrong shape
    _rezip(labels / "yt004_000030.zip", pickle.dumps([0, 1] * 5))                  # not an array
    _rezip(labels / "yt005_000030.zip", pickle.dumps(_RunsCommand("true")))       # code
    annotations = load_vggsound(files)
    assert annotations.video_ids == ["yt006_000030", "yt007_000030", "yt008_000030"]
    assert len(annotations.problems) == 6
    expected = [f"{labels / 'yt000_000030.zip'}: label file not found",
                f"{labels / 'yt001_000030.zip'}: not a readable zip file (File is not a zip file)",
                f"{labels / 'yt002_000030.zip'}: flags must be 0 or 1, found [2.0]",
                f"{labels / 'yt003_000030.zip'}: expected a [1, T] array of per-second flags, found shape [3, 10]",
                f"{labels / 'yt004_000030.zip'}: expected a numeric numpy array, found list"]
    assert annotations.problems[:5] == expected
    assert "refusing to load" in annotations.problems[5]
    assert f"warning: 6 of 9 label files missing or malformed, those videos are left out (first: {expected[0]})" \
        in capsys.readouterr().err
    assert all(v not in annotations.splits[s] for s in annotations.splits for v in ("yt000_000030",))


def test_variant_is_the_files_passed_nothing_fixed_to_141(tmp_path):
    categories = [f"event {k}" for k in range(7)]
    videos = [(f"v{i}", categories[i % 7], "train", np.eye(10, dtype=int)[i % 10]) for i in range(20)]
    files = write_vggsound_files(tmp_path / "full", videos, categories)
    half = write_vggsound_files(tmp_path / "half", videos[::2], categories)
    assert len(load_vggsound(files)) == 20 and len(load_vggsound(half)) == 10
    assert len(load_vggsound(files).classes) == 8


def test_metadata_with_extra_columns_in_any_order(tmp_path):
    files = write_vggsound_files(tmp_path, _videos(3), CATEGORIES)
    files.metadata.write_text("split,start_sec,category,video_id\n"
                              "test,30,dog barking,yt000_000030\n"
                              "train,12,playing cello,yt001_000030\n", encoding="utf-8")
    annotations = load_vggsound(files)
    assert annotations.splits == {"train": ["yt001_000030"], "val": [], "test": ["yt000_000030"]}


@pytest.mark.parametrize("csv_text, message", [
    ("video_id,category\nv,dog barking\n",
     ":1: header lacks column(s) split (needs video_id,category,split, got video_id,category)"),
    ("video_id,category,split\nyt000_000030,cat meowing,train\n", ":2: category 'cat meowing' is not in the category list"),
    ("video_id,category,split\nyt000_000030,dog barking,validation\n", ":2: split 'validation' is not one of train, val, test"),
    ("video_id,category,split\nyt000_000030,dog barking,train\nyt000_000030,dog barking,val\n",
     ":3: video 'yt000_000030' already listed on line 2"),
])
def test_bad_metadata_is_one_line_naming_file_and_line(tmp_path, csv_text, message):
    files = write_vggsound_files(tmp_path, _videos(1), CATEGORIES)
    files.metadata.write_text(csv_text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_vggsound(files)
    assert str(err.value) == f"{files.metadata}{message}"


def test_category_list_line_number_is_the_class(tmp_path):
    path = tmp_path / "categories.txt"
    path.write_text("b\na\nc\n\n", encoding="utf-8")
    assert read_categories(path) == ["b", "a", "c"]
    path.write_text("b\n\nc\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"categories\.txt:2: empty line inside the category list"):
        read_categories(path)
    path.write_text("b\nc\nb\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"categories\.txt:3: category 'b' already on line 1"):
        read_categories(path)


def test_checkpoint_class_list_must_match(tmp_path):
    files = write_vggsound_files(tmp_path, _videos(3), CATEGORIES)
    assert load_vggsound(files, classes=[*CATEGORIES, "background"]).classes[-1] == "background"
    with pytest.raises(UserError, match="category list differs from the checkpoint's classes"):
        load_vggsound(files, classes=CATEGORIES[::-1])


def test_spec_string(tmp_path):
    files = VGGSoundFiles.parse(f"vggsound:{tmp_path}/m.csv,{tmp_path}/c.txt,{tmp_path}/labels")
    assert files.labels_dir == tmp_path / "labels" and str(files) == f"vggsound:{tmp_path}/m.csv,{tmp_path}/c.txt,{tmp_path}/labels"
    with pytest.raises(UserError, match="expected vggsound:META.csv,CATEGORIES.txt,LABELS_DIR"):
        VGGSoundFiles.parse("vggsound:m.csv,c.txt")


def test_synth_writes_vggsound_avel_files_that_read_back_exactly(tmp_path):
    import json

    from click.testing import CliRunner

    from avepipe.cli import main

    out = tmp_path / "synth"
    result = CliRunner().invoke(main, ["synth", str(out), "--format", "vggsound-avel", "--videos", "6",
                                       "--classes", "2", "--seconds", "4", "--size", "64x48", "--fps", "4"])
    assert result.exit_code == 0, result.output
    files = VGGSoundFiles(out / "metadata.csv", out / "categories.txt", out / "labels")
    assert f"--annotations {files}" in result.output
    annotations = load_vggsound(files)
    scenes = json.loads((out / "scenes.json").read_text())
    assert annotations.event_classes == scenes["classes"]
    assert len(annotations) == 6
    for video_id, seconds in scenes["videos"].items():        # what was rendered, second by second
        expected = [annotations.class_index[s["label"]] if s["label"] else annotations.background_index
                    for s in seconds]
        np.testing.assert_array_equal(annotations.segment_labels(video_id, 4), expected)
    refused = CliRunner().invoke(main, ["synth", str(tmp_path / "x"), "--format", "vggsound-avel",
                                        "--background-fraction", "0.2"])
    assert refused.exit_code == 2 and "VGGSound-AVEL has no background-only videos" in refused.output


def test_garbage_collection_is_back_on_after_loading_even_after_an_error(tmp_path):
    """Loading pauses the cyclic GC while it builds the records (half the time at 100k videos)."""
    import gc

    files = write_vggsound_files(tmp_path, _videos(3), CATEGORIES)
    assert len(load_vggsound(files, progress=False)) == 3 and gc.isenabled()
    for zipped in files.labels_dir.glob("*.zip"):
        zipped.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="no readable label file for the 3 videos"):
        load_vggsound(files, progress=False)
    assert gc.isenabled()
