"""Crash-safe, resumable writing of extracted features into a cache (layout: ``layout``).

Durability: ``write`` returns only after the video's part file is complete,
fsynced and renamed into ``CACHE.parts/`` and the directory entry is fsynced,
so neither ``kill -9`` nor a power loss afterwards can lose it. Every file is
created under a temporary name and renamed, so a crash at any moment leaves
the previous, whole version of every file (the videos in flight are lost,
nothing else). Nothing is ever modified in place, hence no HDF5 metadata can be
caught half-written and no SWMR status flags need ``h5clear``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from avepipe import __version__
from avepipe.errors import UserError
from avepipe.data.cache import layout
from avepipe.extract.features import SHAPES, VideoFeatures
from avepipe.extract.provenance import ExtractorConfig, require_same_extractor


def normalise_dtype(dtype: str | Mapping[str, str]) -> dict[str, str]:
    """``"float16"`` or ``{"visual": ..., "audio": ...}`` -> per-modality storage dtype."""
    per = {"visual": dtype, "audio": dtype} if isinstance(dtype, str) else dict(dtype)
    if set(per) != set(SHAPES) or any(d not in layout.DTYPES for d in per.values()):
        raise ValueError(f"dtype must be one of {layout.DTYPES} (or a dict of them for visual/audio), got {dtype!r}")
    return per


class CacheWriter:
    """Adds videos to a cache; refuses to mix extractors; reruns skip ``done_ids``.

    ``dtype`` is the storage dtype: "float32" (default), "float16" (half the
    disk, ~1e-3 relative rounding) or "float64" (only useful to keep imported
    float64 AVE files byte-exact). Several writers may add to the same cache at
    once (shards): each video is its own file, named by a hash of its id.
    ``index_interval`` is the minimum time between index rewrites (seconds;
    longer for huge caches); the index is always rewritten at ``close``.
    """

    def __init__(self, path: str | Path, config: ExtractorConfig, dtype: str | Mapping[str, str] = "float32",
                 *, index_interval: float = 10.0, errors_file: str | Path | None = None):
        self.path = Path(path)
        self.config = config
        self.dtype = normalise_dtype(dtype)
        self.index_interval = index_interval
        self.errors_file = Path(errors_file) if errors_file else layout.errors_path(self.path)
        self._parts = layout.parts_dir(self.path)
        self._check_compatible()
        self._parts.mkdir(parents=True, exist_ok=True)
        layout.remove_stale_temps(self._parts)
        layout.remove_stale_temps(self.path.parent)
        index = layout.read_index(self.path)
        self._table = layout.scan_parts(self._parts, index.table if index else layout.PartTable.of({}))
        self._written: dict[str, layout.PartSummary] = {}      # part name -> summary, since the last index
        self._errors: list[dict[str, str]] = []
        self._closed = False
        if index is not None and np.array_equal(index.table.parts, self._table.parts):
            self._last_index, self._index_wait = time.monotonic(), index_interval     # the index is current
        else:
            self._write_index()

    def _check_compatible(self) -> None:
        stored = layout.stored_provenance(self.path)
        if stored is None:
            return
        extractor_json, dtype = stored
        try:
            existing = ExtractorConfig.from_json(extractor_json)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{self.path}: unreadable extractor provenance ({exc})") from exc
        require_same_extractor(existing, self.config, str(self.path), "this extraction", ("cache", "extraction"),
                               "refusing to mix features; use another cache path or the same options")
        if dtype != self.dtype:
            raise UserError(f"{self.path} stores {dtype} features, refusing to append {self.dtype} "
                            f"(use the same --dtype or another cache path)")

    @property
    def done_ids(self) -> set[str]:
        """Ids already in the cache (finished by this writer, earlier runs, or other shards at open time)."""
        return set(self._table.ids.tolist()) | {s.video_id for s in self._written.values()}

    def write(self, features: VideoFeatures, attrs: Mapping[str, str | int | float] | None = None) -> None:
        """Store one video durably (see module docstring); an existing entry with the same id is replaced.

        ``attrs`` are extra per-video attributes (e.g. the AVE row of an imported video).
        """
        self._ensure_open()
        arrays = {"visual": np.asarray(features.visual), "audio": np.asarray(features.audio)}
        segments = arrays["visual"].shape[0] if arrays["visual"].ndim else 0
        for key, arr in arrays.items():
            if arr.shape != (segments, *SHAPES[key]) or segments < 1:
                raise ValueError(f"{features.video_id}: {key} has shape {arr.shape}, "
                                 f"expected [T, {', '.join(map(str, SHAPES[key]))}] with T = {max(segments, 1)} >= 1")
        name = layout.part_name(features.video_id)
        with layout.atomic_file(self._parts / name) as tmp:
            with h5py.File(tmp, "w") as f:
                a = f.attrs
                a["video_id"] = features.video_id
                a["segments"] = segments
                a["duration"] = float(features.duration)
                a["source_fps"] = float(features.source_fps)
                a["has_audio"] = bool(features.has_audio)
                a["has_video"] = bool(features.has_video)
                a["notes"] = json.dumps(list(features.notes))
                a["extractor"] = self.config.to_json()
                a["dtype"] = json.dumps(self.dtype, sort_keys=True)
                for key, value in (attrs or {}).items():
                    a[key] = value
                for key, arr in arrays.items():
                    data = arr.astype(self.dtype[key], copy=False)
                    # One video per chunk; all-zero arrays (no audio / no video) are left
                    # unallocated: the fill value reads back as the same zeros, for free.
                    ds = f.create_dataset(key, shape=data.shape, dtype=data.dtype, chunks=data.shape, fillvalue=0)
                    if data.view(np.uint8).any():
                        ds[...] = data
        self._written[name] = layout.PartSummary(features.video_id, segments, bool(features.has_audio),
                                                 bool(features.has_video))
        if time.monotonic() - self._last_index >= self._index_wait:
            self._write_index()

    def record_error(self, path: str | Path, reason: str) -> None:
        """Note an input that failed; ``CACHE.errors.json`` is rewritten atomically at once."""
        self._ensure_open()
        self._errors.append({"path": str(path), "reason": reason})
        self._write_errors()

    def close(self) -> None:
        """Rewrite the index (including other writers' parts) and the errors of this run."""
        if self._closed:
            return
        self._write_index()
        self._write_errors()
        self._closed = True

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise ValueError(f"CacheWriter for {self.path} is closed")

    def _write_index(self) -> None:
        start = time.monotonic()
        self._table = layout.scan_parts(self._parts, self._table.updated(layout.PartTable.of(self._written)))
        self._written = {}
        layout.write_index(self.path, self.config.to_json(), self.dtype, self._table, __version__)
        self._last_index = time.monotonic()
        # A 100k-video index takes seconds to write: keep its share of the run under ~5%
        # (index_interval=0 forces a rewrite after every video).
        self._index_wait = max(self.index_interval, 20 * (self._last_index - start)) if self.index_interval else 0.0

    def _write_errors(self) -> None:
        with layout.atomic_file(self.errors_file) as tmp:
            tmp.write_text(json.dumps(self._errors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
