"""``avepipe extract VIDEO_DIR -o CACHE``: every video in a folder to VGG-19 + VGGish features."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.commands.options import device_option
from avepipe.extract.batching import PRECISIONS
from avepipe.extract.cpu_engine import ENGINES
from avepipe.extract.folder import VIDEO_EXTENSIONS


@click.command(cls=Command)
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "cache", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Feature cache (HDF5) to create or add to. Rerunning the same command skips videos "
                   "already in it; a cache made with other extractor options is refused.")
@click.option("--fps", default=16, show_default=True, type=click.IntRange(min=1),
              help="Frames sampled per second: segment t uses the frames shown at t + k/fps, k = 0..fps-1 "
                   "(16 is what the AVE features and the published models used).")
@click.option("--segments", type=click.IntRange(min=1), default=None,
              help="Fixed number of one-second segments T per video (longer videos are cropped, shorter "
                   "ones padded). Default: T = ceil(duration) per video (--preset ave: duration rounded). "
                   "AVE uses 10.")
@click.option("--preset", type=click.Choice(["torchvision", "ave"]), default="torchvision", show_default=True,
              help="torchvision: torchvision's ImageNet VGG-19 and its normalisation, PTS-timed frames, "
                   "per-second audio. ave: the recipe of the released AVE features (Keras VGG-19 with Caffe "
                   "preprocessing, AVE frame indices, OpenCV resize, VGGish examples of whole 10-second "
                   "clips; needs the 'ave' extra); see docs/preset-ave.md.")
@click.option("--audio-backend", type=click.Choice(["torch", "tfhub"]), default="torch", show_default=True,
              help="torch: our PyTorch VGGish (loads pytorch_vggish.pth). tfhub: the official TF-Hub "
                   "VGGish (needs the 'tfhub' extra).")
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="VGG-19 weights file (torchvision .pth, or the Keras notop .h5 with --preset ave). "
                   "Default: $AVEPIPE_VGG19_WEIGHTS / $AVEPIPE_KERAS_VGG19_WEIGHTS, then the library cache.")
@click.option("--vggish-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="VGGish weights (pytorch_vggish.pth). Default: $AVEPIPE_VGGISH_WEIGHTS, then the cache.")
@click.option("--random-backbones", "random_seed", type=int, default=None, metavar="SEED",
              help="Use randomly initialised backbones (seeded) instead of pretrained weights: for smoke "
                   "tests and demos only. The cache records it and training refuses to mix it with real features.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage dtype of the features in the cache (float16 halves the disk, ~1e-3 rounding).")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Frames per VGG-19 forward pass, filled from several videos. Default: the engine's own "
                   "(8 on OpenVINO, same maps at any size; 32 otherwise; larger is faster on GPU, needs more "
                   "memory).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoder processes (video and audio decoding runs there while the CNN runs here). "
                   "0 decodes in this process. Default, per rank (the CPUs this process may use, shared "
                   "among the ranks of this machine): on a GPU all of its CPUs but one; on CPU, where the "
                   "CNN is the bottleneck, one per 16 CPUs (at least 1).")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="fp32", show_default=True,
              help="VGG-19 compute precision (autocast). bf16/fp16 are faster on GPUs with tensor cores and "
                   "change the features slightly (see the README for measured drift); on CPUs without "
                   "native bf16 they are much slower. Recorded in the cache's provenance, so caches of "
                   "different precisions are never mixed.")
@click.option("--tf32", "allow_tf32", is_flag=True, default=False,
              help="On CUDA, let fp32 convolutions and matmuls use TF32 (faster on recent GPUs, ~1e-3 "
                   "relative drift). Off by default: fp32 means fp32. Recorded in the cache's provenance.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto",
              show_default=True,
              help="How VGG-19 runs. auto, on a CPU: OpenVINO when installed (pip install "
                   "'avepipe[cpu-engines]', the fastest measured), else torch-jit (traced, frozen, optimised "
                   "for inference); on a GPU the module as written (torch-eager). Every engine gives the same "
                   "fp32 features (within 1e-5); the one used is recorded in the cache (docs/extraction.md).")
@click.option("--extensions", default=VIDEO_EXTENSIONS, show_default=True,
              help="Comma-separated file extensions to extract (case-insensitive), searched recursively.")
@click.option("--shard", "shard_text", metavar="I/N", default=None,
              help="Extract only shard I of N (0-based) into the shared CACHE: a fixed share of the videos, "
                   "chosen by a hash of the id. Default under torchrun: RANK/WORLD_SIZE. Rerun a killed "
                   "shard alone with the same I/N; 'avepipe cache info' shows each shard's progress.")
def extract(video_dir: Path, cache: Path, fps: int, segments: int | None, preset: str, audio_backend: str,
            vgg_weights: Path | None, vggish_weights: Path | None, random_seed: int | None, dtype: str,
            device: str | None, batch_size: int | None, workers: int | None, precision: str,
            allow_tf32: bool, engine: str, extensions: str, shard_text: str | None) -> None:
    """Extract VGG-19 pool5 (visual) and VGGish (audio) features of every video in VIDEO_DIR.

    Video ids are file stems. Each video becomes T one-second segments with visual
    features [T, 7, 7, 512] (mean over the segment's sampled frames) and audio features
    [T, 128]. Files that cannot be extracted are listed with a one-line reason at the
    end and in CACHE.errors.json; the rest are still extracted. Exit status: 0 when every
    video was extracted, 2 when some failed (or on a usage error), 130 when interrupted
    (finished videos are kept; rerun the same command to continue).
    """
    from avepipe.extraction import ExtractOptions, extract_folder

    options = ExtractOptions(fps, segments, preset, audio_backend, vgg_weights, vggish_weights, random_seed, dtype,
                             device, batch_size, workers, precision, allow_tf32, extensions, shard_text, engine)
    try:
        result = extract_folder(video_dir, cache, options, log=lambda message: click.echo(message, err=True))
    except KeyboardInterrupt:
        click.echo("interrupted: videos finished so far are in the cache; rerun the same command to continue",
                   err=True)
        sys.exit(130)
    click.echo(result.summary(), err=True)
    sys.exit(2 if result.failures else 0)
