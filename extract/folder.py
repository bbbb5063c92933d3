"""Every video of a folder into a feature cache: what ``avepipe extract`` runs.

Video ids are file stems; files sharing a stem are refused, both of them. A file that cannot
be extracted is recorded with a one-line reason (in the result and ``CACHE.errors.json``)
and the rest go on; a rerun skips the videos already in the cache.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from avepipe.errors import UserError

if TYPE_CHECKING:
    from avepipe.data.cache.shards import Shard

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


def extract_folder(video_dir: Path, cache: Path, *, fps: int = 16, segments: int | None = None,
                   preset: str = "torchvision", audio_backend: str = "torch", vgg_weights: Path | None = None,
                   vggish_weights: Path | None = None, random_seed: int | None = None, dtype: str = "float32",
                   device: str | None = None, batch_size: int | None = None, workers: int | None = None,
                   precision: str = "fp32", allow_tf32: bool = False, extensions: str = VIDEO_EXTENSIONS,
                   shard_text: str | None = None,
                   log: Callable[[str], None] = _stderr) -> FolderExtraction:
    """Extract what is not yet in the cache (of this shard's videos); one bad file is recorded, not fatal."""
    from avepipe.device import select_device, use_device
    from avepipe.distributed import env_ranks
    from avepipe.data.cache import CacheWriter, shards
    from avepipe.extract.background_writes import BackgroundWrites
    from avepipe.extract.batching import tune_for
    from avepipe.extract.backbones import build_encoders
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
    # Each rank on its own GPU (as far as there are GPUs), made current so nothing lands on GPU 0 by default.
    device = use_device(select_device(device, ranks))
    tune_for(device)
    workers = default_workers(ranks.local_world_size) if workers is None else workers

    visual_encoder, audio_encoder, config = build_encoders(
        preset=preset, audio_backend=audio_backend, vgg_weights=vgg_weights, vggish_weights=vggish_weights,
        random_seed=random_seed, device=device, fps=fps, segments=segments, precision=precision,
        allow_tf32=allow_tf32)
    if config.is_random:
        log(f"note: random backbones (seed {random_seed}): features are for testing only")
    if device.type == "cuda" and precision == "fp32" and ranks.is_main:
        from avepipe.extract.gpu_advice import fast_setting_line

        log(fast_setting_line(device))
    if device.type == "cpu" and precision == "fp32" and preset != "ave" and ranks.is_main:
        from avepipe.extract.cpu_advice import bf16_line
        from avepipe.machine import cpu_flags

        note = bf16_line(cpu_flags())
        if note:
            log(note)

    notes: list[tuple[str, str]] = []
    errors_file = shards.errors_path(cache, shard) if shard else None
    # Writes (each fsyncs a part file) run in a thread of their own while the next batches are fed.
    with CacheWriter(cache, config, dtype=dtype, errors_file=errors_file) as writer, BackgroundWrites() as writes:
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
                    writes.submit(writer.record_error, path, outcome)
                else:
                    writes.submit(writer.write, outcome)
                    done += 1
                    frames += outcome.segments * fps
                    notes.extend((vid, note) for note in outcome.notes)
                bar.update(1)
                bar.set_postfix({"frames/s": f"{frames / max(time.monotonic() - started, 1e-9):.1f}"})

    return FolderExtraction(cache, done, skipped, failures, notes, errors_file, shard)


def _extract_all(todo: dict[str, Path], visual_encoder, audio_encoder, config, batch_size: int,
                 workers: int):
    """``(video_id, path, VideoFeatures or one-line failure reason)`` for every video, in order of completion.

    Decoding runs in ``workers`` processes (0: here); frames of all videos in flight
    share full CNN batches in this process.
    """
    from avepipe.extract.batching import FrameBatcher
    from avepipe.extract.scheduler import extract_stream
    from avepipe.extract.stream import VideoFailed, in_process_messages
    from avepipe.extract.workers import DecoderPool

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
