"""A packed, read-optimised copy of a finished feature cache, for training at 100k-video scale.

The cache itself (data/cache/layout.py) stays one HDF5 file per video: that is what
makes extraction crash-safe, resumable and shardable. Reading it costs one file
open per video per epoch, which at 100k videos is most of an epoch's read time.
``pack_cache`` (data/cache/packer.py) writes, beside ``CACHE``, a directory ``CACHE.packed/``:

- ``visual.npy`` ``[N, T, 7, 7, 512]`` and ``audio.npy`` ``[N, T, 128]`` in the
  cache's storage dtype, rows in id order (plain ``.npy``: ``np.load(...,
  mmap_mode="r")`` reads them anywhere);
- ``index.json``: format, ids, segments, dtype, extractor, and a fingerprint of the
  parts it was packed from (name, size and mtime of every part file).

A reader opens each array once and reads a video's row with one ``pread`` at a
computed offset: no per-video open, no memory map (so resident memory does not grow
with the pages read). The packed copy is used only while its fingerprint matches the
parts directory; a video added or rewritten afterwards makes it stale and readers
fall back to the parts (``avepipe cache pack`` refreshes it). It is written into a
temporary directory, fsynced and renamed, so a crash leaves the old copy or none
(and a ``CACHE.packed.tmp-*`` directory that the next ``pack_cache`` removes; pack a
cache from one process at a time).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from avepipe.errors import UserError
from avepipe.data.cache import layout

FORMAT = "avepipe-packed-cache"
FORMAT_VERSION = 1
SHAPES = {"visual": (7, 7, 512), "audio": (128,)}


def packed_dir(cache: Path) -> Path:
    return cache.with_name(cache.name + ".packed")


def parts_fingerprint(cache: Path) -> str:
    """Digest of (name, size, mtime) of every finished part: changes when a video is added, removed or rewritten."""
    digest = hashlib.sha256()
    parts = layout.parts_dir(cache)
    names = sorted(layout.list_part_names(parts))
    if not names:
        return digest.hexdigest()
    fd = os.open(parts, os.O_RDONLY)      # stat relative to the directory: no path built and resolved per part
    try:
        for name in names:
            stat = os.stat(name, dir_fd=fd)
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    finally:
        os.close(fd)
    return digest.hexdigest()


class PackedCache:
    """Reads rows of ``CACHE.packed/``; ``open_packed`` returns one only when it matches the parts."""

    def __init__(self, directory: Path, index: dict):
        self.directory = directory
        self.ids = np.array(index["ids"], dtype=object)
        if len(self.ids) > 1 and not (self.ids[:-1] < self.ids[1:]).all():
            raise UserError(f"{directory / 'index.json'}: ids are not sorted; delete {directory} and pack again")
        self.segments = int(index["segments"])
        self._files: dict[str, tuple[int, int, np.dtype, tuple[int, ...]]] = {}
        self._pid: int | None = None

    def _file(self, key: str) -> tuple[int, int, np.dtype, tuple[int, ...]]:
        """(fd, data offset, dtype, row shape) of ``key``.npy, opened once per process."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        if key not in self._files:
            path = self.directory / f"{key}.npy"
            with open(path, "rb") as handle:
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(handle))
                if read_header is None:
                    raise UserError(f"{path}: unsupported .npy version")
                shape, fortran, dtype = read_header(handle)
                offset = handle.tell()
            if fortran or dtype.hasobject or shape[1:] != (self.segments, *SHAPES[key]):
                raise UserError(f"{path}: not a packed {key} array of {self.segments} segments")
            self._files[key] = (os.open(path, os.O_RDONLY), offset, dtype, shape[1:])
        return self._files[key]

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        """Row of each id, -1 where it is not in the packed copy."""
        return layout.positions(self.ids, video_ids)

    def read_rows(self, key: str, rows: np.ndarray) -> np.ndarray:
        """``key`` of the videos at ``rows`` (any order) in the storage dtype, one pread per video."""
        fd, offset, dtype, shape = self._file(key)
        size = int(np.prod(shape)) * dtype.itemsize
        out = np.empty((len(rows), *shape), dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for i in np.argsort(rows, kind="stable"):      # ascending offsets: the disk reads forward
            got = os.preadv(fd, [memoryview(flat[i])], offset + int(rows[i]) * size)
            if got != size:
                raise UserError(f"{self.directory / (key + '.npy')}: truncated at row {int(rows[i])}")
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_files": {}, "_pid": None}    # descriptors do not cross processes


def open_packed(cache: str | Path, extractor_json: str) -> PackedCache | None:
    """The packed copy of ``cache`` if there is one and it is current, else None."""
    cache = Path(cache)
    directory = packed_dir(cache)
    try:
        index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{directory / 'index.json'}: unreadable ({exc}); delete {directory} and pack again") from exc
    if index.get("format") != FORMAT:
        raise UserError(f"{directory / 'index.json'}: not an avepipe packed cache")
    if json.dumps(index["extractor"], sort_keys=True) != json.dumps(json.loads(extractor_json), sort_keys=True):
        return None
    if index["parts_fingerprint"] != parts_fingerprint(cache):
        return None
    return PackedCache(directory, index)
