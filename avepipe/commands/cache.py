"""``avepipe cache``: inspect a feature cache and move features in and out of the official AVE layout."""
from __future__ import annotations

import json
from pathlib import Path

import click

from avepipe.commands.base import Group
from avepipe.commands.options import ANNOTATIONS
from avepipe.errors import UserError



@click.group(cls=Group)
def cache():
    """Inspect feature caches and convert to/from the official AVE layout.

    A cache CACHE (e.g. feats.h5) is a small HDF5 index file plus one file per
    video in CACHE.parts/; errors of the last extraction run are in
    CACHE.errors.json.
    """


@cache.command()
@click.argument("cache_path", metavar="CACHE", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object (for scripts) instead of text.")
def info(cache_path: Path, as_json: bool):
    """Summarise CACHE: videos, segment counts, dtype, videos without audio/video,
    extractor provenance, size on disk, errors of the last run and, for a sharded
    extraction, each shard's expected and done videos and its missing ids.

    Works while an extraction is still writing to CACHE (it shows the videos
    finished so far).
    """
    from avepipe.data.cache import FeatureCache, format_summary

    summary = FeatureCache(cache_path).info()
    click.echo(json.dumps(summary, indent=1, ensure_ascii=False) if as_json else format_summary(summary))


@cache.command()
@click.argument("cache_path", metavar="CACHE", type=click.Path(path_type=Path))
def pack(cache_path: Path):
    """Write CACHE.packed/: all features of a finished CACHE in two .npy arrays that
    training reads with one seek per video instead of one file open (for 10k+ videos).

    CACHE itself is unchanged. Training uses the packed copy only while it matches
    CACHE.parts/; after adding or re-extracting videos, pack again.
    """
    from avepipe.data.cache.packer import pack_cache

    click.echo(f"wrote {pack_cache(cache_path)}")


@cache.command("export-ave")
@click.argument("cache_path", metavar="CACHE", type=click.Path(path_type=Path))
@click.argument("outdir", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--annotations", type=ANNOTATIONS, default=None,
              help="Annotations.txt (or CSV) whose rows set the row order of the output; every video in it must "
                   "be in CACHE. Default: the rows recorded when CACHE was made by import-ave.")
def export_ave(cache_path: Path, outdir: Path, annotations: Path | None):
    """Write CACHE as the official AVE layout into OUTDIR.

    Writes visual_feature.h5 and audio_feature.h5 (dataset 'avadataset',
    [N, T, 7, 7, 512] and [N, T, 128]), row i = video i of the annotation
    order, each in the dtype recorded at import (float32 otherwise); a modality
    no video has (an audio-only import) is skipped. labels.h5 and *_order.h5
    kept at import are copied back. A cache imported with import-ave exports
    byte-identical datasets.
    """
    from avepipe.data.cache.ave import export_ave as run

    for path in run(cache_path, outdir, annotations=annotations):
        click.echo(f"wrote {path}")


@cache.command("import-ave")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", "cache_path", required=True, type=click.Path(path_type=Path),
              help="Cache to create or extend (e.g. ave.h5). Rerunning skips videos already imported.")
@click.option("--annotations", type=ANNOTATIONS, default=None,
              help="Annotations.txt whose VideoID column names row i (default: DIR/Annotations.txt; 'ave': the "
                   "official file shipped with avepipe). "
                   "Repeated ids become '<id>#2', '<id>#3' as in avepipe's annotation loader.")
@click.option("--row-ids", is_flag=True,
              help="Name videos row_00000, row_00001, ... instead (for files without an annotation file, "
                   "e.g. audio_feature_noisy.h5).")
@click.option("--audio-only", is_flag=True,
              help="Import only the audio file; videos are flagged has_video=false (visual reads as zeros).")
@click.option("--visual-only", is_flag=True,
              help="Import only the visual file; videos are flagged has_audio=false (audio reads as zeros).")
@click.option("--visual-file", default="visual_feature.h5", show_default=True,
              help="Visual feature file name inside DIR (or an absolute path).")
@click.option("--audio-file", default="audio_feature.h5", show_default=True,
              help="Audio feature file name inside DIR (or an absolute path), e.g. audio_feature_noisy.h5.")
@click.option("--dtype", type=click.Choice(["source", "float32", "float16", "float64"]), default="source",
              show_default=True,
              help="Storage dtype in the cache. 'source' keeps each file's dtype (float32 or float64) so "
                   "export-ave gives back identical bytes; float16 halves the size.")
def import_ave(directory: Path, cache_path: Path, annotations: Path | None, row_ids: bool, audio_only: bool,
               visual_only: bool, visual_file: str, audio_file: str, dtype: str):
    """Import the official AVE feature layout from DIR into a cache.

    Reads DIR/visual_feature.h5 and DIR/audio_feature.h5 (dataset
    'avadataset', float32 or float64, row i = row i of Annotations.txt),
    records the released-features provenance (Keras VGG-19 + TF-Hub VGGish,
    16 fps, 10 segments) so the cache trains side by side with caches made by
    'avepipe extract --preset ave --audio-backend tfhub', and keeps copies of
    labels.h5 and *_order.h5 for export-ave.

    Example (the 178 background-only videos of the weakly-supervised setting):
    avepipe cache import-ave AVE_DIR --audio-file audio_feature_noisy.h5
    --audio-only --row-ids -o noisy.h5
    """
    from avepipe.data.cache.ave import import_ave as run

    if audio_only and visual_only:
        raise UserError("--audio-only and --visual-only exclude each other")
    modalities = ("audio",) if audio_only else ("visual",) if visual_only else ("visual", "audio")
    added = run(directory, cache_path, annotations=annotations, modalities=modalities,
                files={"visual": visual_file, "audio": audio_file}, row_ids=row_ids, dtype=dtype)
    click.echo(f"imported {added} videos into {cache_path}")
