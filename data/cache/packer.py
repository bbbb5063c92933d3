"""Writing the packed copy of a cache (the format and its reader: data/cache/packed.py).

Written into a temporary directory, fsynced and renamed, so a crash leaves the old copy or none.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from tqdm import tqdm

from avepipe.data.cache import layout
from avepipe.data.cache.packed import FORMAT, FORMAT_VERSION, SHAPES, packed_dir, parts_fingerprint
from avepipe.data.cache.reader import FeatureCache
from avepipe.errors import UserError


def pack_cache(cache: str | Path | FeatureCache, progress: bool = True) -> Path:
    """Write ``CACHE.packed/`` from the parts of a cache whose videos all have the same segment count
    (a path, or an open ``FeatureCache``: its ``read_arrays`` supplies the arrays)."""
    source = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    cache = source.path
    ids = source.ids
    if not ids:
        raise UserError(f"{cache}: no videos to pack")
    table = source.table
    segments = int(table.segments[0])
    uneven = np.flatnonzero(table.segments != segments)
    if len(uneven):
        raise UserError(f"{cache}: video {table.ids[uneven[0]]!r} has {table.segments[uneven[0]]} segments, "
                        f"{ids[0]!r} has {segments}; only caches of equal-length videos can be packed")
    fingerprint = parts_fingerprint(cache)
    final = packed_dir(cache)
    for leftover in final.parent.glob(f"{glob.escape(final.name)}.tmp-*"):    # of a packer killed earlier
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = _scratch_name(final)
    tmp.mkdir()
    try:
        # Rows are appended with plain writes, not through a memory map: the packer's resident memory
        # stays flat however large the copy (mapped pages would count towards its RSS).
        handles = {key: open(tmp / f"{key}.npy", "wb") for key in SHAPES}
        try:
            for key, shape in SHAPES.items():
                np.lib.format.write_array_header_1_0(handles[key], {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(source.dtype[key])), "fortran_order": False,
                    "shape": (len(ids), segments, *shape)})
            for video_id in tqdm(ids, desc=f"packing {cache.name}", unit="video", disable=not progress,
                                 mininterval=5):
                for key, array in zip(("visual", "audio"), source.read_arrays(video_id, ("visual", "audio"), dtype=None)):
                    handles[key].write(np.ascontiguousarray(array, dtype=source.dtype[key]).tobytes())
        finally:
            for handle in handles.values():
                handle.close()
        (tmp / "index.json").write_text(json.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION, "segments": segments, "dtype": source.dtype,
            "extractor": json.loads(source.config.to_json()), "parts_fingerprint": fingerprint, "ids": ids,
        }, ensure_ascii=False), encoding="utf-8")
        for name in ("visual.npy", "audio.npy", "index.json"):
            fd = os.open(tmp / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _swap_in(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def _scratch_name(final: Path) -> Path:
    """``CACHE.packed.tmp-<pid>-<random>``: not a cache temp file (those are files), removed by the next pack."""
    return final.with_name(f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp``; a crash in between leaves no packed copy (readers use the parts)."""
    if final.exists():
        old = _scratch_name(final)
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(tmp, final)
    layout.fsync_dir(final.parent)
