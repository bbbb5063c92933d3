"""``avepipe extract VIDEO_DIR -o CACHE``: every video in a folder to VGG-19 + VGGish features."""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import click
from tqdm import tqdm

from avepipe.errors import UserError

VIDEO_EXTENSIONS = "mp4,m4v,mkv,webm,avi,mov,flv,wmv,mpg,mpeg,ts,mts,3gp,ogv"


def discover_videos(folder: Path, extensions: str) -> list[Path]:
    """Files under ``folder`` (recursively) whose extension is listed, case-insensitively, sorted."""
    wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def split_duplicate_ids(paths: list[Path]) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """Video id = file stem. Files sharing an id are ambiguous: all of them become errors."""
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_id[path.stem].append(path)
    unique = {vid: group[0] for vid, group in by_id.items() if len(group) == 1}
    errors = [(path, f"duplicate video id {vid!r} (also {', '.join(str(o) for o in group if o != path)}); rename one")
              for vid, group in by_id.items() if len(group) > 1 for path in group]
    return unique, errors


def one_line(error: BaseException) -> str:
    """A user-facing reason: decode errors are already one line; anything else gets its type named."""
    from extract.decode import DecodeError

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, DecodeError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("video_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "cache", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Feature cache (HDF5) to create or add to. Rerunning the same command skips videos "
                   "already in it; a cache made with other extractor options is refused.")
@click.option("--fps", default=16, show_default=True, type=click.IntRange(min=1),
              help="Frames sampled per second: segment t uses the frames shown at t + k/fps, k = 0..fps-1 "
                   "(16 is what the AVE features and the published models used).")
@click.option("--segments", type=click.IntRange(min=1), default=None,
              help="Fixed number of one-second segments T per video (longer videos are cropped, shorter "
                   "ones padded). Default: T = ceil(duration) per video. AVE uses 10.")
@click.option("--preset", type=click.Choice(["torchvision", "ave"]), default="torchvision", show_default=True,
              help="torchvision: torchvision's ImageNet VGG-19 and its normalisation. ave: Keras VGG-19 "
                   "weights with Caffe preprocessing, reproducing the released AVE features.")
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
@click.option("--device", default=None,
              help="Torch device for the CNNs, e.g. cpu, cuda, cuda:1. Default: cuda when available, else cpu.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Frames per VGG-19 forward pass. Default: the encoder's own (larger is faster on GPU, "
                   "needs more memory).")
@click.option("--extensions", default=VIDEO_EXTENSIONS, show_default=True,
              help="Comma-separated file extensions to extract (case-insensitive), searched recursively.")
def extract(video_dir: Path, cache: Path, fps: int, segments: int | None, preset: str, audio_backend: str,
            vgg_weights: Path | None, vggish_weights: Path | None, random_seed: int | None, dtype: str,
            device: str | None, batch_size: int | None, extensions: str) -> None:
    """Extract VGG-19 pool5 (visual) and VGGish (audio) features of every video in VIDEO_DIR.

    Video ids are file stems. Each video becomes T one-second segments with visual
    features [T, 7, 7, 512] (mean over the segment's sampled frames) and audio features
    [T, 128]. Files that cannot be extracted are listed with a one-line reason at the
    end and in CACHE.errors.json; the rest are still extracted. Exit status: 0 when every
    video was extracted, 2 when some failed (or on a usage error), 130 when interrupted
    (finished videos are kept; rerun the same command to continue).
    """
    try:
        failed = _run(video_dir, cache, fps, segments, preset, audio_backend, vgg_weights, vggish_weights,
                      random_seed, dtype, device, batch_size, extensions)
    except UserError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: videos finished so far are in the cache; rerun the same command to continue",
                   err=True)
        sys.exit(130)
    sys.exit(2 if failed else 0)


def _run(video_dir, cache, fps, segments, preset, audio_backend, vgg_weights, vggish_weights, random_seed,
         dtype, device, batch_size, extensions) -> int:
    """Extract what is not yet in the cache; returns the number of failed files."""
    from extract.cache_writer import CacheWriter
    from extract.encoders import build_encoders
    from extract.pipeline import extract_video

    paths = discover_videos(video_dir, extensions)
    if not paths:
        raise UserError(f"{video_dir}: no video files with extensions {extensions}")
    videos, failures = split_duplicate_ids(paths)

    visual_encoder, audio_encoder, config = build_encoders(
        preset=preset, audio_backend=audio_backend, vgg_weights=vgg_weights, vggish_weights=vggish_weights,
        random_seed=random_seed, device=device, fps=fps, segments=segments)
    if batch_size is not None:
        visual_encoder.batch_size = batch_size
    if config.is_random:
        click.echo(f"note: random backbones (seed {random_seed}): features are for testing only", err=True)

    notes: list[tuple[str, str]] = []
    with CacheWriter(cache, config, dtype=dtype) as writer:
        for path, reason in failures:
            writer.record_error(path, reason)
        todo = {vid: path for vid, path in videos.items() if vid not in writer.done_ids}
        skipped = len(videos) - len(todo)
        done = frames = 0
        started = time.monotonic()
        with tqdm(total=len(todo), unit="video", desc="extract", file=sys.stderr, dynamic_ncols=True) as bar:
            for vid, path in todo.items():
                try:
                    features = extract_video(path, visual_encoder, audio_encoder, config, video_id=vid)
                except Exception as error:  # one bad file must not stop the folder
                    reason = one_line(error)
                    failures.append((path, reason))
                    writer.record_error(path, reason)
                else:
                    writer.write(features)
                    done += 1
                    frames += features.segments * fps
                    notes.extend((vid, note) for note in features.notes)
                bar.update(1)
                bar.set_postfix({"frames/s": f"{frames / max(time.monotonic() - started, 1e-9):.1f}"})

    _summary(done, skipped, failures, notes, cache)
    return len(failures)


def _summary(done: int, skipped: int, failures: list[tuple[Path, str]], notes: list[tuple[str, str]],
             cache: Path) -> None:
    lines = [f"extracted {done} video(s) into {cache}" + (f", {skipped} already there" if skipped else "")]
    lines += [f"note: {vid}: {note}" for vid, note in notes]
    if failures:
        lines.append(f"{len(failures)} file(s) failed (also in {cache}.errors.json):")
        lines += [f"  {path}: {reason}" for path, reason in failures]
    click.echo("\n".join(lines), err=True)
