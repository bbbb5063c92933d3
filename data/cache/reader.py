"""Read-only, streaming access to a feature cache (layout: ``layout``).

Opening is cheap (the index plus a directory listing); each read opens one
part file, reads it and closes it, so no HDF5 handle is shared across forked
DataLoader workers and a cache larger than RAM streams. The parts directory is
the truth: videos a writer finished after the last index rewrite are seen
(call ``refresh`` to pick up ones finished after opening), temp files are not.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from avepipe.errors import UserError
from avepipe.data.cache import layout
from avepipe.data.cache.info import summarise
from avepipe.data.cache.packed import PackedCache, open_packed
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig


class FeatureCache:
    """A cache written by ``CacheWriter``: ``.ids``, ``.read(id)``, ``.read_arrays(id)``, ``.info()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._parts = layout.parts_dir(self.path)
        if not self.path.exists() and not self._parts.is_dir():
            raise UserError(f"{self.path}: no feature cache here (neither the file nor {self._parts.name}/ exists)")
        index = layout.read_index(self.path)
        stored = (index.extractor_json, index.dtype) if index else layout.stored_provenance(self.path)
        if stored is None:
            raise UserError(f"{self.path}: empty feature cache (no index and no finished videos)")
        try:
            self.config = ExtractorConfig.from_json(stored[0])
        except (ValueError, TypeError) as exc:
            raise UserError(f"{self.path}: unreadable extractor provenance ({exc})") from exc
        self.dtype: dict[str, str] = stored[1]
        self._table = index.table if index else layout.PartTable.of({})
        self.refresh()

    def refresh(self) -> None:
        """Pick up videos finished since opening (only new parts are opened)."""
        self._table = layout.scan_parts(self._parts, self._table)
        self.__dict__.pop("packed", None)       # a new part makes the packed copy stale: look again

    @cached_property
    def packed(self) -> PackedCache | None:
        """The packed copy (``avepipe cache pack``) if it is current, else None; looked up (every part file
        stat'ed for its fingerprint) once per open cache, so datasets sharing the cache share the lookup."""
        return open_packed(self.path, self.config.to_json())

    @property
    def ids(self) -> list[str]:
        return self._table.ids.tolist()

    @property
    def table(self) -> layout.PartTable:
        """Every video's id, part, segments and has_audio/has_video as arrays, sorted by id (not a copy)."""
        return self._table

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self._table.rows([video_id])[0] >= 0

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        """Position of each id in ``ids`` (-1 where absent), by binary search."""
        return self._table.rows(video_ids)

    def summary(self, video_id: str) -> layout.PartSummary:
        """Segments and has_audio/has_video of a video, from the index (no part opened)."""
        return self._table.summary(self._row(video_id))

    def read(self, video_id: str) -> VideoFeatures:
        """The whole record, arrays as float32 (the ``VideoFeatures`` contract)."""
        with self._open(video_id) as f:
            a = f.attrs
            return VideoFeatures(
                video_id=str(a["video_id"]),
                visual=f["visual"][()].astype(np.float32, copy=False),
                audio=f["audio"][()].astype(np.float32, copy=False),
                duration=float(a["duration"]),
                source_fps=float(a["source_fps"]),
                has_audio=bool(a["has_audio"]),
                has_video=bool(a["has_video"]),
                notes=json.loads(a["notes"]),
            )

    def read_arrays(self, video_id: str, keys: Sequence[str] = ("visual", "audio"),
                    dtype: str | np.dtype | None = "float32") -> tuple[np.ndarray, ...]:
        """Only the arrays a training step needs; ``dtype=None`` keeps the storage dtype (e.g. float16)."""
        with self._open(video_id) as f:
            arrays = tuple(f[key][()] for key in keys)
        return arrays if dtype is None else tuple(a.astype(dtype, copy=False) for a in arrays)

    def attrs(self, video_id: str) -> dict[str, Any]:
        """All per-video attributes (including extra ones such as ``ave_row`` of imported videos)."""
        with self._open(video_id) as f:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}

    def info(self) -> dict[str, Any]:
        """Counts, segment histogram, dtype, provenance, size on disk and sharded-extraction progress (JSON-able)."""
        return summarise(self)

    def part_path(self, video_id: str) -> Path:
        """The part file holding ``video_id``."""
        return self._parts / self._table.part(self._row(video_id))

    def _row(self, video_id: str) -> int:
        row = int(self._table.rows([video_id])[0]) if isinstance(video_id, str) else -1
        if row < 0:
            raise KeyError(f"{video_id!r} is not in the cache {self.path}")
        return row

    def _open(self, video_id: str) -> h5py.File:
        return h5py.File(self.part_path(video_id), "r")
