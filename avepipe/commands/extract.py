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
    """A user-facing reason for a failed file (see ``extract.stream.failure_reason``)."""
    from avepipe.extract.stream import failure_reason

    return failure_reason(error)


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
@click.option("--device", default=None,
              help="Torch device for the CNNs, e.g. cpu, cuda, cuda:1. Default: cuda when available, else cpu.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Frames per VGG-19 forward pass, filled from several videos. Default: the encoder's own "
                   "(32; larger is faster on GPU, needs more memory).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decoder processes (video and audio decoding runs there while the CNN runs here). "
                   "0 decodes in this process. Default: CPU cores - 1 (at least 1, at most 8).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="VGG-19 compute precision (autocast). bf16/fp16 are faster on GPUs with tensor cores and "
                   "change the features slightly (see the README for measured drift); on CPUs without "
                   "native bf16 they are much slower. Recorded in the cache's provenance, so caches of "
                   "different precisions are never mixed.")
@click.option("--tf32", "allow_tf32", is_flag=True, default=False,
              help="On CUDA, let fp32 convolutions and matmuls use TF32 (faster on recent GPUs, ~1e-3 "
                   "relative drift). Off by default: fp32 means fp32. Recorded in the cache's provenance.")
@click.option("--extensions", default=VIDEO_EXTENSIONS, show_default=True,
              help="Comma-separated file extensions to extract (case-insensitive), searched recursively.")
@click.option("--shard", "shard_text", metavar="I/N", default=None,
              help="Extract only shard I of N (0-based) into the shared CACHE: a fixed share of the videos, "
                   "chosen by a hash of the id. Default under torchrun: RANK/WORLD_SIZE. Rerun a killed "
                   "shard alone with the same I/N; 'avepipe cache info' shows each shard's progress.")
def extract(video_dir: Path, cache: Path, fps: int, segments: int | None, preset: str, audio_backend: str,
            vgg_weights: Path | None, vggish_weights: Path | None, random_seed: int | None, dtype: str,
            device: str | None, batch_size: int | None, workers: int | None, precision: str,
            allow_tf32: bool, extensions: str, shard_text: str | None) -> None:
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
                      random_seed, dtype, device, batch_size, workers, precision, allow_tf32, extensions,
                      shard_text)
    except UserError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: videos finished so far are in the cache; rerun the same command to continue",
                   err=True)
        sys.exit(130)
    sys.exit(2 if failed else 0)


def _run(video_dir, cache, fps, segments, preset, audio_backend, vgg_weights, vggish_weights, random_seed,
         dtype, device, batch_size, workers, precision, allow_tf32, extensions, shard_text) -> int:
    """Extract what is not yet in the cache (of this shard's videos); returns the number of failed files."""
    import torch

    from avepipe.distributed import env_ranks
    from avepipe.data.cache import CacheWriter, shards
    from avepipe.extract.encoders import build_encoders
    from avepipe.extract.workers import default_workers

    paths = discover_videos(video_dir, extensions)
    if not paths:
        raise UserError(f"{video_dir}: no video files with extensions {extensions}")
    videos, failures = split_duplicate_ids(paths)
    ranks = env_ranks()
    shard = (shards.parse_shard(shard_text) if shard_text
             else shards.Shard(ranks.rank, ranks.world_size) if ranks.distributed else None)
    if shard:
        videos = {vid: path for vid, path in videos.items() if shard.owns(vid)}
        failures = [(path, reason) for path, reason in failures if shard.owns(path.stem)]
    if ranks.local_world_size > 1:    # several ranks on this machine share its GPUs and cores
        if device is None and torch.cuda.is_available():
            device = f"cuda:{ranks.local_rank % torch.cuda.device_count()}"
        if workers is None:
            workers = max(1, default_workers() // ranks.local_world_size)

    visual_encoder, audio_encoder, config = build_encoders(
        preset=preset, audio_backend=audio_backend, vgg_weights=vgg_weights, vggish_weights=vggish_weights,
        random_seed=random_seed, device=device, fps=fps, segments=segments, precision=precision,
        allow_tf32=allow_tf32)
    if config.is_random:
        click.echo(f"note: random backbones (seed {random_seed}): features are for testing only", err=True)

    notes: list[tuple[str, str]] = []
    errors_file = shards.errors_path(cache, shard) if shard else None
    with CacheWriter(cache, config, dtype=dtype, errors_file=errors_file) as writer:
        if shard:
            shards.write_manifest(cache, shard, videos)
        for path, reason in failures:
            writer.record_error(path, reason)
        # Checked before anything is decoded: a rerun over a finished cache decodes nothing.
        todo = {vid: path for vid, path in videos.items() if vid not in writer.done_ids}
        skipped = len(videos) - len(todo)
        done = frames = 0
        started = time.monotonic()
        desc = f"extract shard {shard.label}" if shard else "extract"
        with tqdm(total=len(todo), unit="video", desc=desc, file=sys.stderr, dynamic_ncols=True) as bar:
            for vid, path, outcome in _extract_all(todo, visual_encoder, audio_encoder, config,
                                                   batch_size or visual_encoder.batch_size, workers):
                if isinstance(outcome, str):  # one bad file must not stop the folder
                    failures.append((path, outcome))
                    writer.record_error(path, outcome)
                else:
                    writer.write(outcome)
                    done += 1
                    frames += outcome.segments * fps
                    notes.extend((vid, note) for note in outcome.notes)
                bar.update(1)
                bar.set_postfix({"frames/s": f"{frames / max(time.monotonic() - started, 1e-9):.1f}"})

    _summary(done, skipped, failures, notes, cache, errors_file, shard)
    return len(failures)


def _extract_all(todo: dict[str, Path], visual_encoder, audio_encoder, config, batch_size: int,
                 workers: int | None):
    """``(video_id, path, VideoFeatures or one-line failure reason)`` for every video, in order of completion.

    Decoding runs in ``workers`` processes (0: here); frames of all videos in flight
    share full CNN batches in this process.
    """
    from avepipe.extract.batching import FrameBatcher
    from avepipe.extract.scheduler import extract_stream
    from avepipe.extract.stream import VideoFailed, in_process_messages
    from avepipe.extract.workers import DecoderPool, default_workers

    if not todo:
        return
    workers = default_workers() if workers is None else workers
    keyed = list(enumerate(todo.items()))
    ids = {key: vid for key, (vid, _) in keyed}
    paths = [(key, path) for key, (_, path) in keyed]
    batcher = FrameBatcher(visual_encoder, batch_size, config.visual_precision, config.tf32)
    pool = DecoderPool(min(workers, len(paths)), config) if workers else None
    try:
        messages = pool.messages(paths) if pool else in_process_messages(paths, config)
        for key, outcome in extract_stream(messages, batcher, audio_encoder, config, ids):
            yield ids[key], todo[ids[key]], outcome.reason if isinstance(outcome, VideoFailed) else outcome
    finally:
        if pool is not None:
            pool.close()


def _summary(done: int, skipped: int, failures: list[tuple[Path, str]], notes: list[tuple[str, str]],
             cache: Path, errors_file: Path | None, shard) -> None:
    lines = [f"extracted {done} video(s) into {cache}" + (f" as shard {shard.label}" if shard else "")
             + (f", {skipped} already there" if skipped else "")]
    lines += [f"note: {vid}: {note}" for vid, note in notes]
    if failures:
        lines.append(f"{len(failures)} file(s) failed (also in {errors_file or f'{cache}.errors.json'}):")
        lines += [f"  {path}: {reason}" for path, reason in failures]
    click.echo("\n".join(lines), err=True)
