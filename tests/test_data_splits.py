"""Official AVE split files and the seeded random split."""
from __future__ import annotations

from collections import Counter

import h5py
import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.data.annotations import Annotations, Event, VideoRecord, load_annotations
from avepipe.data.splits import (annotations_folder, load_official_splits, random_split, read_order_file,
                                 resolve_splits, write_splits)
from avepipe.data.vggsound import write_vggsound_files
from tests._paths import AVE_DIR

AVE = AVE_DIR


@pytest.fixture(scope="module")
def ave():
    return load_annotations(AVE / "Annotations.txt")


def test_official_splits(ave):
    splits = load_official_splits(AVE, ave)
    assert [len(splits[n]) for n in ("train", "val", "test")] == [3339, 402, 402]
    union = set().union(*splits.values())
    assert len(union) == 4143
    with h5py.File(AVE / "test_order.h5", "r") as handle:
        first_rows = handle["order"][:3].tolist()
    assert splits["test"][:3] == [ave.video_ids[r] for r in first_rows]  # file order is kept


def test_write_and_read_back_official_format(ave, tmp_path):
    splits = load_official_splits(AVE, ave)
    write_splits(tmp_path, ave, splits)
    for name in ("train", "val", "test"):
        with h5py.File(tmp_path / f"{name}_order.h5", "r") as mine, h5py.File(AVE / f"{name}_order.h5", "r") as real:
            assert list(mine) == ["order"] and mine["order"].dtype == np.int64
            assert np.array_equal(mine["order"][()], real["order"][()])


def test_bad_order_files(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle["order"] = np.array([0, 5], dtype=np.int64)
    with pytest.raises(UserError, match="row index 5 outside"):
        read_order_file(tmp_path / "x.h5", num_rows=3)
    with h5py.File(tmp_path / "y.h5", "w") as handle:
        handle["rows"] = np.array([0])
    with pytest.raises(UserError, match="no dataset 'order'"):
        read_order_file(tmp_path / "y.h5")
    (tmp_path / "z.h5").write_text("not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5"):
        read_order_file(tmp_path / "z.h5")


def _toy(n_per_class: dict[str, int]) -> Annotations:
    records, i = [], 0
    for label, n in n_per_class.items():
        for _ in range(n):
            events = () if label == "background" else (Event(0, 5, label),)
            records.append(VideoRecord(f"v{i:03d}", f"v{i:03d}", events))
            i += 1
    return Annotations(records, [c for c in n_per_class if c != "background"])


def test_random_split_deterministic_disjoint_complete():
    toy = _toy({"a": 30, "b": 20, "c": 10, "background": 10})
    first = random_split(toy, seed=7)
    assert first == random_split(toy, seed=7)
    assert first != random_split(toy, seed=8)
    assert [len(first[n]) for n in ("train", "val", "test")] == [56, 7, 7]
    sets = [set(v) for v in first.values()]
    assert sum(len(s) for s in sets) == len(set().union(*sets)) == 70
    for ids in first.values():
        assert ids == sorted(ids, key=toy.video_ids.index)  # annotation-row order


def test_random_split_is_stratified():
    toy = _toy({"a": 40, "b": 20, "c": 10, "background": 10})
    splits = random_split(toy, (0.5, 0.25, 0.25), seed=3)
    first_label = {v: (toy.events(v)[0].label if toy.events(v) else "background") for v in toy.video_ids}
    for name, share in (("train", 0.5), ("val", 0.25), ("test", 0.25)):
        counts = Counter(first_label[v] for v in splits[name])
        for label, total in (("a", 40), ("b", 20), ("c", 10), ("background", 10)):
            assert abs(counts[label] - share * total) <= 1, (name, label, counts)


def test_random_split_bad_fractions():
    toy = _toy({"a": 5})
    with pytest.raises(UserError, match="summing to 1"):
        random_split(toy, (0.5, 0.2, 0.2))
    assert [len(v) for v in random_split(toy, (1.0, 0.0, 0.0)).values()] == [5, 0, 0]


def test_vggsound_files_use_their_csv_splits_unless_a_splits_folder_is_given(tmp_path):
    """VGGSound-AVEL files have no folder of split files of their own: the CSV's split column, or --splits."""
    flags = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 0])
    videos = [(f"v{i}_000010", "dog", split, flags) for i, split in enumerate(("train", "train", "val", "test"))]
    files = write_vggsound_files(tmp_path / "vggsound", videos, ["dog"])
    annotations = load_annotations(files)
    assert annotations_folder(files) is None and annotations_folder(str(files)) is None
    assert annotations_folder(AVE / "Annotations.txt") == AVE
    assert resolve_splits(annotations, files, None, set(), 0.1, 0.1, 0) == (
        {"train": ["v0_000010", "v1_000010"], "val": ["v2_000010"], "test": ["v3_000010"]},
        f"official splits from {files}")
    chosen = {"train": ["v3_000010", "v2_000010"], "val": ["v0_000010"], "test": ["v1_000010"]}
    (tmp_path / "mine").mkdir()
    write_splits(tmp_path / "mine", annotations, chosen)
    for given in (files, str(files)):
        assert resolve_splits(annotations, given, tmp_path / "mine", set(), 0.1, 0.1, 0) == (
            chosen, f"official splits from {tmp_path / 'mine'}")
