"""Every video of a folder into a feature cache: what ``avepipe extract`` runs.

It sits above both ``avepipe.extract`` (video -> features) and ``avepipe.data.cache`` (features
on disk), so neither imports the other's way: features flow video -> extract -> cache.
Video ids are file stems (avepipe/extract/folder.py). A file that cannot be extracted is
recorded with a one-line reason (in the result and ``CACHE.errors.json``) and the rest go on;
a rerun skips the videos already in the cache.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from avepipe.data.cache import CacheWriter, shards
from avepipe.data.cache.shards import Shard
from avepipe.device import select_device, use_device
from avepipe.distributed import env_ranks
from avepipe.errors import UserError
from avepipe.extract.background_writes import BackgroundWrites
from avepipe.extract.backbones import build_encoders
from avepipe.extract.batching import FrameBatcher, tune_for
from avepipe.extract.cpu_advice import bf16_note
from avepipe.extract.gpu_advice import fast_setting_line
from avepipe.extract.folder import VIDEO_EXTENSIONS, discover_videos, split_duplicate_ids
from avepipe.extract.scheduler import extract_stream
from avepipe.extract.stream import VideoFailed, in_process_messages
from avepipe.extract.workers import DecoderPool, default_workers


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class FolderExtraction:
    """What one run did: videos written, already there, failed (with reasons) and their notes."""

    cache: Path
    done: int
    skipped: int
    failures: list[tuple[Path, str]]
    notes: list[tuple[str, str]]
    errors_file: Path | None
    shard: Shard | None

    def summary(self) -> str:
        lines = [f"extracted {self.done} video(s) into {self.cache}"
                 + (f" as shard {self.shard.label}" if self.shard else "")
                 + (f", {self.skipped} already there" if self.skipped else "")]
        lines += [f"note: {vid}: {note}" for vid, note in self.notes]
        if self.failures:
            errors_file = self.errors_file or f"{self.cache}.errors.json"
            lines.append(f"{len(self.failures)} file(s) failed (also in {errors_file}):")
            lines += [f"  {path}: {reason}" for path, reason in self.failures]
        return "\n".join(lines)


@dataclass(frozen=True)
class ExtractOptions:
    """What ``avepipe extract`` was asked: the backbones and sampling (recorded in the cache's provenance),
    how the work runs (device, batch size, decoder workers), which files, and this process's shard
    (``"I/N"``; under torchrun the rank's by default)."""

    fps: int = 16
    segments: int | None = None
    preset: str = "torchvision"
    audio_backend: str = "torch"
    vgg_weights: Path | None = None
    vggish_weights: Path | None = None
    random_seed: int | None = None
    dtype: str = "float32"
    device: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    precision: str = "fp32"
    allow_tf32: bool = False
    extensions: str = VIDEO_EXTENSIONS
    shard_text: str | None = None
    engine: str = "auto"            # how VGG-19 runs (extract/cpu_engine.py)


def extract_folder(video_dir: Path, cache: Path, options: ExtractOptions = ExtractOptions(),
                   log: Callable[[str], None] = _stderr) -> FolderExtraction:
    """Extract what is not yet in the cache (of this shard's videos); one bad file is recorded, not fatal."""
    paths = discover_videos(video_dir, options.extensions)
    if not paths:
        raise UserError(f"{video_dir}: no video files with extensions {options.extensions}")
    videos, failures = split_duplicate_ids(paths)
    ranks = env_ranks()
    shard = (shards.parse_shard(options.shard_text) if options.shard_text
             else Shard(ranks.rank, ranks.world_size) if ranks.distributed else None)
    if shard:
        videos = {vid: path for vid, path in videos.items() if shard.owns(vid)}
        failures = [(path, reason) for path, reason in failures if shard.owns(path.stem)]
    # Each rank on its own GPU (as far as there are GPUs), made current so nothing lands on GPU 0 by default.
    device = use_device(select_device(options.device, ranks))
    tune_for(device)
    workers = default_workers(device.type, ranks.local_world_size) if options.workers is None else options.workers
    options = replace(options, device=device, workers=workers)
    visual_encoder, audio_encoder, config = build_encoders(
        preset=options.preset, audio_backend=options.audio_backend, vgg_weights=options.vgg_weights,
        vggish_weights=options.vggish_weights, random_seed=options.random_seed, device=options.device,
        fps=options.fps, segments=options.segments, precision=options.precision, allow_tf32=options.allow_tf32,
        engine=options.engine)
    if config.is_random:
        log(f"note: random backbones (seed {options.random_seed}): features are for testing only")
    if device.type == "cuda" and options.precision == "fp32" and ranks.is_main:
        log(fast_setting_line(device))
    if device.type == "cpu" and ranks.is_main:
        log(f"VGG-19 engine: {config.visual_engine} (recorded in the cache; docs/extraction.md \"CPU engine\")")
    note = bf16_note(device, options.precision, options.preset) if ranks.is_main else None
    if note:
        log(note)
    errors_file = shards.errors_path(cache, shard) if shard else None
    with CacheWriter(cache, config, dtype=options.dtype, errors_file=errors_file) as writer:
        if shard:
            shards.write_manifest(cache, shard, videos)
        for path, reason in failures:
            writer.record_error(path, reason)
        # Checked before anything is decoded: a rerun over a finished cache decodes nothing.
        todo = {vid: path for vid, path in videos.items() if vid not in writer.done_ids}
        outcomes = _extract_all(todo, visual_encoder, audio_encoder, config,
                                options.batch_size or visual_encoder.batch_size, options.workers)
        done, notes = _write_outcomes(writer, outcomes, len(todo), failures, options.fps,
                                      f"extract shard {shard.label}" if shard else "extract")
    return FolderExtraction(cache, done, len(videos) - len(todo), failures, notes, errors_file, shard)


def _write_outcomes(writer: CacheWriter, outcomes, total: int, failures: list[tuple[Path, str]], fps: int,
                    desc: str) -> tuple[int, list[tuple[str, str]]]:
    """Write each extracted video, record each failure (appended to ``failures``); ``(videos written, notes)``.

    Writes (each fsyncs a part file) run in a thread of their own while the next batches are fed."""
    done = frames = 0
    notes: list[tuple[str, str]] = []
    started = time.monotonic()
    with tqdm(total=total, unit="video", desc=desc, file=sys.stderr, dynamic_ncols=True) as bar, \
            BackgroundWrites() as writes:
        for vid, path, outcome in outcomes:
            if isinstance(outcome, str):  # one bad file must not stop the folder
                failures.append((path, outcome))
                writes.submit(writer.record_error, path, outcome)
            else:
                writes.submit(writer.write, outcome)
                done += 1
                frames += outcome.segments * fps
                notes.extend((vid, note) for note in outcome.notes)
            bar.update(1)
            bar.set_postfix({"frames/s": f"{frames / max(time.monotonic() - started, 1e-9):.1f}"})
    return done, notes


def _extract_all(todo: dict[str, Path], visual_encoder, audio_encoder, config, batch_size: int,
                 workers: int):
    """``(video_id, path, VideoFeatures or one-line failure reason)`` for every video, in order of completion.

    Decoding runs in ``workers`` processes (0: here); frames of all videos in flight
    share full CNN batches in this process.
    """
    if not todo:
        return
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
