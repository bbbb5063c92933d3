"""The VGGSound label index: a start re-reads only label zips that changed; a bad index is rebuilt, never trusted."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from avepipe.data import label_index, vggsound
from avepipe.data.label_index import INDEX_NAME
from avepipe.data.vggsound import load_vggsound, write_vggsound_files

CATEGORIES = ["dog barking", "playing cello", "car engine"]


@pytest.fixture
def settled(monkeypatch):
    """Index files however recently they were written (the tests write them a moment before reading)."""
    monkeypatch.setattr(label_index, "SETTLED_NS", 0)


@pytest.fixture
def reads(monkeypatch):
    """The label files actually opened, by name."""
    opened = []

    def counting(path):
        opened.append(path.name)
        return read(path)

    read = vggsound.read_flags
    monkeypatch.setattr(vggsound, "read_flags", counting)
    return opened


def _dataset(tmp_path, n=9, seed=0):
    rng = np.random.default_rng(seed)
    videos = [(f"yt{i:03d}_000030", CATEGORIES[i % 3], ("train", "val", "test")[i % 3], rng.integers(0, 2, 10))
              for i in range(n)]
    return write_vggsound_files(tmp_path, videos, CATEGORIES), videos


def _labels(annotations):
    return {v: annotations.segment_labels(v, 10).tolist() for v in annotations.video_ids}


def _expected(videos):
    return {v: np.where(flags == 1, CATEGORIES.index(c), len(CATEGORIES)).tolist() for v, c, _, flags in videos}


def _rewrite(path, flags):
    """A new zip at ``path``, its stat guaranteed to differ from the old one's (size and mtime)."""
    before = path.stat()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("relabelled.pkl", pickle.dumps(np.asarray(flags).reshape(1, -1), protocol=2))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_second_start_reads_no_label_file_and_gets_the_same_labels(tmp_path, settled, reads):
    files, videos = _dataset(tmp_path)
    first = load_vggsound(files, progress=False)
    assert len(reads) == 9 and (files.labels_dir / INDEX_NAME).is_file()
    reads.clear()
    second = load_vggsound(files, progress=False)
    assert reads == []
    assert _labels(second) == _labels(first) == _expected(videos)
    assert second.splits == first.splits and second.categories == first.categories


def test_a_changed_label_file_is_read_again(tmp_path, settled, reads):
    files, videos = _dataset(tmp_path)
    load_vggsound(files, progress=False)
    new_flags = [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    _rewrite(files.labels_dir / "yt004_000030.zip", new_flags)
    reads.clear()
    annotations = load_vggsound(files, progress=False)
    assert reads == ["yt004_000030.zip"]
    assert annotations.segment_labels("yt004_000030", 10).tolist() == [1 if f else 3 for f in new_flags]
    reads.clear()
    load_vggsound(files, progress=False)
    assert reads == []                         # the index was rewritten with the new flags


def test_bad_files_are_not_indexed_and_reported_at_every_start(tmp_path, settled, reads, capsys):
    files, _ = _dataset(tmp_path)
    (files.labels_dir / "yt002_000030.zip").write_bytes(b"not a zip")
    for _ in range(2):
        reads.clear()
        annotations = load_vggsound(files, progress=False)
        assert "yt002_000030" not in annotations and len(annotations.problems) == 1
        assert "warning: 1 of 9 label files missing or malformed" in capsys.readouterr().err
    assert reads == ["yt002_000030.zip"]


def test_recently_written_files_are_read_but_not_yet_indexed(tmp_path, reads):
    files, videos = _dataset(tmp_path)
    assert _labels(load_vggsound(files, progress=False)) == _expected(videos)
    assert not (files.labels_dir / INDEX_NAME).exists()


def _tamper_flags(path):
    data = dict(np.load(path))
    data["flags"][0, 0] = 7
    np.savez(path, **data)


def _pickled_ids(path):
    data = dict(np.load(path))
    data["ids"] = np.array([object()] * len(data["ids"]), dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **data)


@pytest.mark.parametrize("damage, note", [
    (lambda p: p.write_bytes(b"garbage"), "unreadable label index (ValueError"),
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "unreadable label index"),
    (_tamper_flags, "label index holds flags other than 0/1 or bad lengths"),
    (_pickled_ids, "unreadable label index (ValueError: Object arrays cannot be loaded when allow_pickle=False)"),
])
def test_a_damaged_index_is_rebuilt_not_trusted(tmp_path, settled, reads, capsys, damage, note):
    files, videos = _dataset(tmp_path)
    load_vggsound(files, progress=False)
    index = files.labels_dir / INDEX_NAME
    damage(index)
    capsys.readouterr()
    reads.clear()
    annotations = load_vggsound(files, progress=False)
    assert note in capsys.readouterr().err
    assert len(reads) == 9 and _labels(annotations) == _expected(videos)
    reads.clear()
    load_vggsound(files, progress=False)
    assert reads == []                         # rebuilt whole


def test_an_unwritable_directory_reads_the_zips_each_time(tmp_path, settled, reads, capsys, monkeypatch):
    files, videos = _dataset(tmp_path)

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(label_index, "atomic_file", refused)
    for _ in range(2):
        reads.clear()
        assert _labels(load_vggsound(files, progress=False)) == _expected(videos)
        assert len(reads) == 9
        assert f"note: cannot write the label index {files.labels_dir / INDEX_NAME} ([Errno 13] Permission " \
               f"denied" in capsys.readouterr().err
