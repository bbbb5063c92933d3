"""The official AVE feature layout, in and out of a feature cache.

AVE ships ``visual_feature.h5`` (``avadataset`` ``[N, 10, 7, 7, 512]``) and
``audio_feature.h5`` (``avadataset`` ``[N, 10, 128]``), float32 or float64, row
i being row i of ``Annotations.txt``; plus ``labels.h5`` and ``*_order.h5``
split files. Import stores each row as one cache video named by its
Annotations key (``avepipe.data.annotations``: repeated YouTube ids become ``<id>#<k>``),
remembering its row and source dtype, so export writes the same bytes back.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from tqdm import tqdm

from avepipe.errors import UserError
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import layout
from avepipe.data.cache.reader import FeatureCache
from avepipe.data.cache.writer import CacheWriter
from avepipe.extract.features import SHAPES, VideoFeatures
from avepipe.extract.provenance import AVE_RELEASED

DATASET = "avadataset"
FILES = {"visual": "visual_feature.h5", "audio": "audio_feature.h5"}
EXTRA_PATTERNS = ("labels.h5", "*_order.h5")


def extras_dir(cache: Path) -> Path:
    """Where import keeps verbatim copies of ``labels.h5`` / ``*_order.h5`` for export."""
    return cache.with_name(cache.name + ".ave")


def _open_source(path: Path, modality: str) -> tuple[h5py.File, h5py.Dataset]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: cannot open as HDF5 ({exc})") from exc
    if DATASET not in f or not isinstance(f[DATASET], h5py.Dataset):
        f.close()
        raise UserError(f"{path}: no dataset '{DATASET}' (not an AVE feature file)")
    ds = f[DATASET]
    expected = "[N, T, " + ", ".join(map(str, SHAPES[modality])) + "]"
    if ds.ndim != 2 + len(SHAPES[modality]) or ds.shape[2:] != SHAPES[modality] or 0 in ds.shape[:2]:
        f.close()
        raise UserError(f"{path}: '{DATASET}' has shape {list(ds.shape)}, expected {modality} features {expected}")
    if ds.dtype.name not in layout.DTYPES:
        f.close()
        raise UserError(f"{path}: '{DATASET}' has dtype {ds.dtype}, expected one of {', '.join(layout.DTYPES)}")
    return f, ds


def _row_ids(rows: int, annotations: Path | None, directory: Path, row_ids: bool, source: Path) -> list[str]:
    if row_ids:
        return [f"row_{i:05d}" for i in range(rows)]
    annotations = annotations or directory / "Annotations.txt"
    if not annotations.is_file():
        raise UserError(f"{annotations}: no such annotation file (give --annotations FILE, or --row-ids to name "
                        f"videos row_00000, row_00001, ...)")
    ids = load_annotations(annotations).video_ids
    if len(ids) != rows:
        raise UserError(f"{annotations}: {len(ids)} videos but {source} has {rows} rows "
                        f"(use the matching annotation file, or --row-ids)")
    return ids


def import_ave(directory: str | Path, cache: str | Path, *, annotations: str | Path | None = None,
               modalities: Sequence[str] = ("visual", "audio"), files: dict[str, str | Path] | None = None,
               row_ids: bool = False, dtype: str = "source", progress: bool = True) -> int:
    """Import AVE-layout feature files into ``cache``; returns the number of videos added.

    ``modalities`` picks which files to read (e.g. ``("audio",)`` for
    ``audio_feature_noisy.h5``, whose videos have no released visual features);
    a missing modality is stored as zeros flagged ``has_video``/``has_audio``
    false. ``files`` overrides the file names (relative to ``directory``).
    ``dtype="source"`` keeps each file's dtype so that export is byte-exact.
    ``labels.h5`` / ``*_order.h5`` that fit these rows are kept for export.
    Resumable: videos already in the cache are skipped.
    """
    directory, cache = Path(directory), Path(cache)
    if not modalities or set(modalities) - set(FILES):
        raise ValueError(f"modalities must be a non-empty subset of {tuple(FILES)}")
    sources: dict[str, tuple[h5py.File, h5py.Dataset]] = {}
    try:
        for modality in modalities:
            sources[modality] = _open_source(directory / (files or {}).get(modality, FILES[modality]), modality)
        shapes = {m: ds.shape[:2] for m, (_, ds) in sources.items()}
        first = next(iter(sources.values()))[1]
        if len(set(shapes.values())) > 1:
            raise UserError(f"{directory}: visual and audio files disagree on [videos, segments]: "
                            + ", ".join(f"{Path(f.filename).name} {list(s)}" for (f, _), s
                                        in zip(sources.values(), shapes.values())))
        rows, segments = first.shape[:2]
        origin = ", ".join(Path(f.filename).name for f, _ in sources.values())
        ids = _row_ids(rows, Path(annotations) if annotations else None, directory, row_ids,
                       Path(first.file.filename))
        source_dtype = {m: sources[m][1].dtype.name if m in sources else "float32" for m in FILES}
        store_dtype = source_dtype if dtype == "source" else dtype
        added = 0
        with CacheWriter(cache, AVE_RELEASED, store_dtype, index_interval=30.0) as writer:
            done = writer.done_ids
            for row in tqdm(range(rows), desc="import-ave", unit="video", disable=not progress):
                if ids[row] in done:
                    continue
                arrays = {m: (sources[m][1][row] if m in sources
                              else np.zeros((segments, *SHAPES[m]), np.float32)) for m in FILES}
                features = VideoFeatures(
                    video_id=ids[row], visual=arrays["visual"], audio=arrays["audio"], duration=float(segments),
                    source_fps=math.nan, has_audio="audio" in sources, has_video="visual" in sources,
                    notes=[f"imported from the AVE release ({origin} row {row})"])
                attrs = {"ave_row": row, **{f"ave_{m}_dtype": source_dtype[m] for m in sources}}
                writer.write(features, attrs)
                added += 1
        _copy_extras(directory, extras_dir(cache), rows)
        return added
    finally:
        for f, _ in sources.values():
            f.close()


def _fits(path: Path, rows: int) -> bool:
    """Whether a labels/order file describes these ``rows`` (a split file of another set must not travel along)."""
    try:
        with h5py.File(path, "r") as f:
            if "avadataset" in f:
                return f["avadataset"].shape[0] == rows
            order = f["order"][()] if "order" in f else None
            return order is not None and order.size > 0 and 0 <= order.min() and order.max() < rows
    except OSError:
        return False


def _copy_extras(directory: Path, target: Path, rows: int) -> None:
    found = sorted({p for pattern in EXTRA_PATTERNS for p in directory.glob(pattern)
                    if p.is_file() and _fits(p, rows)})
    if not found:
        return
    target.mkdir(exist_ok=True)
    for path in found:
        with layout.atomic_file(target / path.name) as tmp:
            shutil.copyfile(path, tmp)


def export_order(cache: FeatureCache, annotations: str | Path | None) -> list[str]:
    """Video ids in AVE row order: the annotation file's, else the rows recorded at import."""
    if annotations is not None:
        ids = load_annotations(annotations).video_ids
        missing = [v for v in ids if v not in cache]
        if missing:
            raise UserError(f"{cache.path}: {len(missing)} of the {len(ids)} videos in {annotations} are not in "
                            f"the cache (first: {missing[0]!r})")
        return ids
    rows = {}
    for video_id in cache.ids:
        row = cache.attrs(video_id).get("ave_row")
        if row is None:
            raise UserError(f"{cache.path}: video {video_id!r} has no recorded AVE row (not imported with "
                            f"import-ave); give --annotations FILE to set the row order")
        rows[int(row)] = video_id
    if sorted(rows) != list(range(len(cache))):
        raise UserError(f"{cache.path}: recorded AVE rows are not 0..{len(cache) - 1}; give --annotations FILE")
    return [rows[i] for i in range(len(rows))]


def export_ave(cache: str | Path, outdir: str | Path, *, annotations: str | Path | None = None,
               progress: bool = True) -> list[Path]:
    """Write ``visual_feature.h5`` / ``audio_feature.h5`` in AVE row order; returns the files written.

    Each file gets the dtype recorded at import (float32, the official one,
    otherwise); a modality no exported video has (e.g. an audio-only import) is
    not written. ``labels.h5`` / ``*_order.h5`` kept at import are copied back.
    """
    features = FeatureCache(cache)
    outdir = Path(outdir)
    ids = export_order(features, annotations)
    if not ids:
        raise UserError(f"{cache}: no videos to export")
    summaries = [features.summary(v) for v in ids]
    lengths = {s.segments for s in summaries}
    if len(lengths) > 1:
        raise UserError(f"{cache}: videos have different segment counts {sorted(lengths)}; "
                        f"the AVE layout needs one T (extract with --segments N)")
    segments = lengths.pop()
    first = features.attrs(ids[0])
    present = {"visual": any(s.has_video for s in summaries), "audio": any(s.has_audio for s in summaries)}
    modalities = [m for m in FILES if present[m]]
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for modality in modalities:
        target = outdir / FILES[modality]
        dtype = np.dtype(first.get(f"ave_{modality}_dtype", "float32"))
        with layout.atomic_file(target) as tmp, h5py.File(tmp, "w") as f:
            ds = f.create_dataset(DATASET, shape=(len(ids), segments, *SHAPES[modality]), dtype=dtype)
            for row, video_id in enumerate(tqdm(ids, desc=f"export {modality}", unit="video", disable=not progress)):
                ds[row] = features.read_arrays(video_id, (modality,), dtype=dtype)[0]
        written.append(target)
    extras = extras_dir(Path(cache))
    if extras.is_dir():
        for path in sorted(extras.iterdir()):
            if not path.name.startswith(layout.TMP_PREFIX):
                shutil.copyfile(path, outdir / path.name)
                written.append(outdir / path.name)
    return written
