"""Train/validation/test splits: the official AVE ``*_order.h5`` files, or a seeded random split.

An order file holds one int64 dataset ``order``: row indices into the annotation
file (row i = ``Annotations.video_ids[i]``). Splits are returned as lists of video
keys, in row order, keyed by ``"train"``, ``"val"``, ``"test"``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from avepipe.errors import UserError
from avepipe.data.annotations import BACKGROUND, Annotations
from avepipe.data.vggsound import PREFIX as VGGSOUND_PREFIX, VGGSoundAnnotations, VGGSoundFiles

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def order_path(directory: str | Path, split: str) -> Path:
    return Path(directory) / f"{split}_order.h5"


def read_order_file(path: str | Path, num_rows: int | None = None) -> np.ndarray:
    """The int64 row indices of one ``*_order.h5`` file, checked against ``num_rows``."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            if "order" not in handle:
                raise UserError(f"{path}: no dataset 'order' (found: {', '.join(handle) or 'nothing'})")
            order = np.asarray(handle["order"][()]).reshape(-1)
    except FileNotFoundError:
        raise UserError(f"{path}: split file not found") from None
    except OSError as err:
        raise UserError(f"{path}: not a readable HDF5 file ({err})") from None
    if order.size and not np.issubdtype(order.dtype, np.integer):
        if not np.all(order == np.round(order)):
            raise UserError(f"{path}: 'order' holds non-integer values")
    order = order.astype(np.int64)
    if num_rows is not None and order.size and (order.min() < 0 or order.max() >= num_rows):
        raise UserError(f"{path}: row index {int(order.max() if order.max() >= num_rows else order.min())} "
                        f"outside the annotation file's {num_rows} rows")
    if np.unique(order).size != order.size:
        raise UserError(f"{path}: 'order' lists a row more than once")
    return order


def write_order_file(path: str | Path, rows: Sequence[int]) -> Path:
    """Write row indices as the official layout does: dataset ``order``, int64 ``[N]``."""
    path = Path(path)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("order", data=np.asarray(rows, dtype=np.int64).reshape(-1))
    return path


def find_split_dir(candidates: Sequence[str | Path | None]) -> Path | None:
    """The first of ``candidates`` (None entries skipped) holding all three ``*_order.h5`` files."""
    for directory in candidates:
        if directory and all(order_path(directory, s).is_file() for s in SPLIT_NAMES):
            return Path(directory)
    return None


def official_split_dir(splits_dir: str | Path | None, *fallbacks: str | Path | None) -> Path | None:
    """``splits_dir`` (which must hold the three files), else the first complete one of ``fallbacks``."""
    if splits_dir and not find_split_dir([splits_dir]):
        raise UserError(f"{splits_dir}: needs train_order.h5, val_order.h5 and test_order.h5")
    return find_split_dir([splits_dir, *fallbacks])


def annotations_folder(annotations_path: str | Path | VGGSoundFiles) -> Path | None:
    """The folder of an annotation file, where its split files are looked for; None for VGGSound-AVEL files,
    whose splits are their metadata CSV's split column unless a splits folder is given."""
    if isinstance(annotations_path, VGGSoundFiles) or str(annotations_path).startswith(VGGSOUND_PREFIX):
        return None
    return Path(annotations_path).parent


def official_splits(annotations: Annotations, annotations_path: str | Path | VGGSoundFiles,
                    splits_dir: str | Path | None, *fallbacks: str | Path | None) -> tuple[dict[str, list[str]], str] | None:
    """The splits that come with the data, and where they were read: VGGSound-AVEL's metadata split column
    (unless ``splits_dir`` is given), else the ``*_order.h5`` files in ``splits_dir``, beside the annotations
    or in the first complete one of ``fallbacks``. None when there are none."""
    if isinstance(annotations, VGGSoundAnnotations) and not splits_dir:    # the metadata CSV's split column
        return annotations.splits, str(annotations.source)
    directory = official_split_dir(splits_dir, annotations_folder(annotations_path), *fallbacks)
    if directory is None:
        return None
    return load_official_splits(directory, annotations), str(directory)


def resolve_splits(annotations: Annotations, annotations_path: str | Path | VGGSoundFiles,
                   splits_dir: str | Path | None, available: set[str], val_fraction: float, test_fraction: float,
                   seed: int) -> tuple[dict[str, list[str]], str]:
    """Official splits (``official_splits``), else a seeded random split of the ``available`` (cached) videos.
    Returns the splits and a one-line description of where they came from.
    """
    official = official_splits(annotations, annotations_path, splits_dir)
    if official:
        return official[0], f"official splits from {official[1]}"
    present = [k for k in annotations.video_ids if annotations.source_id(k) in available]
    if not present:
        raise UserError(f"{annotations_path}: none of its videos is in the cache")
    subset = Annotations([annotations.record(k) for k in present], annotations.event_classes, annotations.source)
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    return random_split(subset, fractions, seed=seed), f"random split (seed {seed}, fractions {fractions})"


def load_official_splits(directory: str | Path, annotations: Annotations) -> dict[str, list[str]]:
    """``train/val/test_order.h5`` in ``directory`` as lists of video keys; the splits must be disjoint."""
    ids = annotations.video_ids
    splits = {name: [ids[i] for i in read_order_file(order_path(directory, name), len(ids))]
              for name in SPLIT_NAMES}
    _check_disjoint(splits, directory)
    return splits


def write_splits(directory: str | Path, annotations: Annotations, splits: Mapping[str, Sequence[str]]) -> list[Path]:
    """Write ``<name>_order.h5`` for each split (row indices of ``annotations``)."""
    row = {key: i for i, key in enumerate(annotations.video_ids)}
    paths = []
    for name, keys in splits.items():
        missing = [k for k in keys if k not in row]
        if missing:
            raise UserError(f"split {name!r}: video {missing[0]!r} is not in {annotations.source}")
        paths.append(write_order_file(order_path(directory, name), [row[k] for k in keys]))
    return paths


def seeded_split(keys: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                 strata: Sequence[str] | None = None) -> dict[str, list[str]]:
    """A seeded split of ``keys`` into train/val/test with sizes ``fractions``; both tasks split through it.

    Every stratum (``strata[i]`` is the one of ``keys[i]``; None: one stratum) is shuffled,
    each key gets its quantile within its stratum, and the globally quantile-sorted list is
    cut at the fractions, so each stratum is spread over the splits in proportion even when
    it has only a handful of keys. Keys come back in their given order.
    """
    if len(fractions) != len(SPLIT_NAMES) or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise UserError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    keys = list(keys)
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for row, stratum in enumerate(strata if strata is not None else [""] * len(keys)):
        groups.setdefault(stratum, []).append(row)
    quantile = np.empty(len(keys))
    for rows in groups.values():
        shuffled = rng.permutation(rows)
        quantile[shuffled] = (np.arange(len(rows)) + rng.random()) / len(rows)
    ranked = np.argsort(quantile, kind="stable")
    bounds = np.cumsum([0, *_split_sizes(len(keys), fractions)])
    return {name: [keys[r] for r in np.sort(ranked[bounds[i]:bounds[i + 1]])] for i, name in enumerate(SPLIT_NAMES)}


def random_split(annotations: Annotations, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                 stratify: bool = True) -> dict[str, list[str]]:
    """``seeded_split`` of the annotated videos, stratified by each video's first event class
    (background-only videos form their own stratum)."""
    strata = []
    for key in annotations.video_ids:
        events = annotations.events(key)
        strata.append(events[0].label if (events and stratify) else BACKGROUND)
    return seeded_split(annotations.video_ids, fractions, seed, strata)


def _split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes summing to n; a non-zero fraction gets at least one video when n allows it."""
    val, test = (int(round(n * f)) for f in fractions[1:])
    if n >= 3:
        val = max(val, 1 if fractions[1] > 0 else 0)
        test = max(test, 1 if fractions[2] > 0 else 0)
    train = n - val - test
    if train < 0 or (fractions[0] > 0 and train == 0 and n >= 3):
        raise UserError(f"{n} videos are too few for split fractions {tuple(fractions)}")
    return [train, val, test]


def _check_disjoint(splits: Mapping[str, Sequence[str]], where: object) -> None:
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = set(splits[a]) & set(splits[b])
            if common:
                raise UserError(f"{where}: splits {a!r} and {b!r} share {len(common)} video(s), "
                                f"e.g. {sorted(common)[0]!r}")
