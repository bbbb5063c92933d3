"""The flags of many VGGSound-AVEL label zips, kept in one small file so a start does not re-read them all.

Reading a label zip (zip directory, restricted unpickler, checks) costs ~0.3 ms of
CPU, ~35 s for the 100k videos at every ``train``/``evaluate`` start. The index
``LABELS_DIR/.avepipe-label-index.npz`` holds, per label file read before, its
size, mtime and ctime and its flags. A start stats every label file (one
syscall each) and re-reads only files that are new or whose stat differs (ctime
changes with any write, also one that restores the mtime).

The zips stay the untrusted input; the index is avepipe's own data: plain numpy
arrays in an ``.npz`` loaded with ``allow_pickle=False``, written to a temporary
file, fsynced and renamed. An index that cannot be read or fails its checks is
reported in one line and rebuilt, never trusted. Files that fail to read are not
indexed (they are re-read and reported at every start). When the directory is
not writable the flags are read from the zips each time. Deleting the index is
always safe.
"""
from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from avepipe.errors import UserError
from avepipe.data.cache.layout import atomic_file, is_in, positions

INDEX_NAME = ".avepipe-label-index.npz"
VERSION = 1
NO_STAT = np.array([-1, -1, -1], np.int64)
# A file changed this recently could change again within the same timestamp tick, unseen by its stat:
# it is read now but indexed only at a later start (git's "racily clean" rule).
SETTLED_NS = 2_000_000_000


class LabelIndex:
    """Sorted ids with each label file's (size, mtime_ns, ctime_ns) and its flags (uint8, padded; ``lengths``)."""

    def __init__(self, ids: np.ndarray, stamps: np.ndarray, flags: np.ndarray, lengths: np.ndarray):
        self.ids, self.stamps, self.flags, self.lengths = ids, stamps, flags, lengths

    @classmethod
    def empty(cls) -> LabelIndex:
        return cls(np.zeros(0, "U1"), np.zeros((0, 3), np.int64), np.zeros((0, 1), np.uint8), np.zeros(0, np.int64))

    @classmethod
    def load(cls, path: Path) -> LabelIndex:
        """The index at ``path``; empty when there is none, or (with a one-line note) when it is unreadable."""
        try:
            with np.load(path, allow_pickle=False) as data:
                index = cls(*(data[key] for key in ("ids", "stamps", "flags", "lengths")))
                version = int(data["version"])
        except FileNotFoundError:
            return cls.empty()
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            print(f"note: {path}: unreadable label index ({type(err).__name__}: {err}); rebuilding it", file=sys.stderr)
            return cls.empty()
        problem = index._problem(version)
        if problem:
            print(f"note: {path}: {problem}; rebuilding it", file=sys.stderr)
            return cls.empty()
        return index

    def _problem(self, version: int) -> str | None:
        """What is wrong with a loaded index, if anything (it is checked, not trusted)."""
        n = len(self.ids)
        if version != VERSION:
            return f"label index version {version}, expected {VERSION}"
        if (self.ids.ndim != 1 or self.ids.dtype.kind != "U" or self.stamps.shape != (n, 3)
                or self.stamps.dtype != np.int64 or self.flags.ndim != 2 or self.flags.shape[0] != n
                or self.flags.dtype != np.uint8 or self.lengths.shape != (n,) or self.lengths.dtype != np.int64):
            return "label index arrays have unexpected shapes or dtypes"
        if n and (self.flags.max() > 1 or self.lengths.min() < 1 or self.lengths.max() > self.flags.shape[1]):
            return "label index holds flags other than 0/1 or bad lengths"
        if n > 1 and not (self.ids[:-1] < self.ids[1:]).all():
            return "label index ids are not sorted and unique"
        return None

    def with_entries(self, ids: Sequence[str], stamps: Sequence[np.ndarray], flags: Sequence[np.ndarray]) -> LabelIndex:
        """This index with these entries added or replaced."""
        new_ids = np.array(ids, dtype=str)
        kept = np.flatnonzero(~is_in(self.ids, new_ids))
        width = max([self.flags.shape[1], *map(len, flags)])
        padded = np.zeros((len(flags), width), np.uint8)
        for row, f in enumerate(flags):
            padded[row, :len(f)] = f
        old_flags = np.zeros((len(kept), width), np.uint8)
        old_flags[:, :self.flags.shape[1]] = self.flags[kept]
        merged = LabelIndex(np.concatenate([self.ids[kept], new_ids]),
                            np.concatenate([self.stamps[kept], np.array(stamps, np.int64).reshape(-1, 3)]),
                            np.concatenate([old_flags, padded]),
                            np.concatenate([self.lengths[kept], np.array([len(f) for f in flags], np.int64)]))
        order = np.argsort(merged.ids, kind="stable")
        return LabelIndex(merged.ids[order], merged.stamps[order], merged.flags[order], merged.lengths[order])

    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename); a crash leaves the previous index or none."""
        with atomic_file(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, version=np.array(VERSION), ids=self.ids, stamps=self.stamps, flags=self.flags,
                         lengths=self.lengths)


def _stamps(directory: Path, names: Sequence[str], progress: bool) -> np.ndarray:
    """(size, mtime_ns, ctime_ns) of each file, ``NO_STAT`` where it cannot be stat'ed."""
    out = np.empty((len(names), 3), np.int64)
    fd = os.open(directory, os.O_RDONLY)
    try:
        for row, name in enumerate(tqdm(names, desc="checking VGGSound label files", unit="file", leave=False,
                                        disable=not progress, mininterval=2)):
            try:
                stat = os.stat(name, dir_fd=fd)
                out[row] = stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns
            except OSError:
                out[row] = NO_STAT
    finally:
        os.close(fd)
    return out


def indexed_flags(labels_dir: Path, video_ids: Sequence[str], read: Callable[[Path], np.ndarray],
                  progress: bool = True) -> list[np.ndarray | UserError]:
    """Flags ``[T]`` of ``LABELS_DIR/ID.zip`` per id (or the UserError ``read`` raised): from the index where the
    file's stat matches it, else through ``read`` (then the index is rewritten)."""
    path = labels_dir / INDEX_NAME
    index = LabelIndex.load(path)
    query = np.array(video_ids, dtype=str)
    stamps = _stamps(labels_dir, [f"{v}.zip" for v in video_ids], progress)
    rows = positions(index.ids, query)
    valid = (rows >= 0) & (stamps != NO_STAT).any(axis=1)
    valid[valid] = (index.stamps[rows[valid]] == stamps[valid]).all(axis=1)
    out: list[np.ndarray | UserError] = [None] * len(video_ids)
    for i in np.flatnonzero(valid):
        row = rows[i]
        out[i] = index.flags[row, :index.lengths[row]].astype(np.int64)
    fresh_ids, fresh_stamps, fresh_flags = [], [], []
    settled = time.time_ns() - SETTLED_NS
    for i in tqdm(np.flatnonzero(~valid), desc="reading VGGSound labels", unit="video", leave=False,
                  disable=not progress, mininterval=2):
        try:
            out[i] = read(labels_dir / f"{video_ids[i]}.zip")
        except UserError as err:
            out[i] = err
            continue
        if (stamps[i] != NO_STAT).any() and stamps[i, 2] < settled:
            fresh_ids.append(video_ids[i])
            fresh_stamps.append(stamps[i])
            fresh_flags.append(out[i])
    if fresh_ids:
        try:
            index.with_entries(fresh_ids, fresh_stamps, fresh_flags).save(path)
        except OSError as err:
            print(f"note: cannot write the label index {path} ({err}); the label files will be read again "
                  f"at the next start", file=sys.stderr)
    return out
