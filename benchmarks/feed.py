"""The feed: avepipe's extraction path with the CNNs removed vs bare PyAV decoding, one worker each.

- ``ours``: ``avepipe.extraction._extract_all`` with one decoder worker, VGG-19 replaced by a module
  returning zeros (the uint8 staging, preprocessing and batching stay) and VGGish by an encoder
  returning zeros: what is left is decoding, frame selection and conversion, hashing, the queue,
  audio decoding and the assembly of the maps - the rate at which avepipe can feed any CNN.
- ``bare``: one process decoding the same clips with PyAV and converting, with one reused
  ``VideoReformatter`` per clip, the same number of frames per second (16, the first frame at
  or after each target time) to 224x224 RGB. No audio, no hashing, no queue: the floor.

Clips are generated H.264 + AAC (``benchmarks/_videos.py``, 640x360 at 30 fps). Rounds alternate
(ours, bare, ours, ...); the figure is the median of ``bare_s / ours_s`` over rounds. Prints one
JSON line. Not run by the tests.

    OMP_NUM_THREADS=1 python benchmarks/feed.py [--videos 4] [--seconds 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import resource
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Only the standard library at module level: decoder workers are spawned, and a spawned process
# imports the parent's main module first (torch here would cost every worker seconds, not avepipe).

FPS, SIZE = 16, 224


def zero_maps():
    """Stands in for VGG-19: pool5-shaped zeros for a batch of preprocessed images."""
    import torch

    class ZeroMaps(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.new_zeros((images.shape[0], 512, 7, 7))

    return ZeroMaps()


class ZeroAudio:
    """Stands in for VGGish: a zero embedding per segment."""

    def encode(self, waveform_16k, segments: int, hop: int = 16000):
        import numpy as np

        return np.zeros((segments, 128), np.float32)


def ours(clips: list[Path], visual, config, batch_size: int) -> int:
    from avepipe.extraction import _extract_all

    todo = {path.stem: path for path in clips}
    segments = 0
    for _, _, outcome in _extract_all(todo, visual, ZeroAudio(), config, batch_size, workers=1):
        if isinstance(outcome, str):
            raise SystemExit(f"extraction failed: {outcome}")
        segments += outcome.segments
    return segments * FPS


def bare(clips: list[Path]) -> int:
    import av
    from av.video.reformatter import VideoReformatter

    converted = 0
    for path in clips:
        reformatter = VideoReformatter()
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # as avepipe's decoder (extract/decode.py): the same decoder, frame threads
            start, target, keep = None, 0, False
            for frame in container.decode(stream):
                time_s = float(frame.pts * stream.time_base)
                start = time_s if start is None else start
                while time_s - start >= target / FPS:    # skip targets this frame passed, keep it once
                    target += 1
                    keep = True
                if keep:
                    reformatter.reformat(frame, width=SIZE, height=SIZE, format="rgb24").to_ndarray()
                    converted += 1
                    keep = False
    return converted


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the decoder workers, joined by then)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run, *args) -> tuple[int, float, float]:
    """``(run's result, wall seconds, CPU seconds)``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = run(*args)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import torch

    from avepipe.extract.backbones import build_encoders
    from benchmarks._machine import machine
    from benchmarks._videos import write_clip

    torch.set_num_threads(1)
    visual, _, config = build_encoders(random_seed=0, device="cpu")
    visual.features = zero_maps()
    seconds = {"ours": [], "bare": []}
    cpu = {"ours": [], "bare": []}
    frames = {}
    with tempfile.TemporaryDirectory() as folder:
        clips = [write_clip(Path(folder) / f"clip{i}.mp4", args.seconds, 30, seed=i) for i in range(args.videos)]
        ours(clips[:1], visual, config, args.batch_size)          # warm-up of both
        bare(clips[:1])
        for _ in range(args.rounds):
            for name, run in (("ours", lambda: ours(clips, visual, config, args.batch_size)),
                              ("bare", lambda: bare(clips))):
                frames[name], wall, used = timed(run)
                seconds[name].append(wall)
                cpu[name].append(used)
    ratios = [b / o for o, b in zip(seconds["ours"], seconds["bare"])]
    cpu_ratios = [b / o for o, b in zip(cpu["ours"], cpu["bare"])]
    print(json.dumps({
        "benchmark": "feed", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "videos": args.videos, "seconds": args.seconds, "source_fps": 30, "size": "640x360",
        "frames": frames, "rounds": args.rounds, "ours_s": seconds["ours"], "bare_s": seconds["bare"],
        "ours_cpu_s": cpu["ours"], "bare_cpu_s": cpu["bare"],
        "ours_frames_per_s": frames["ours"] / statistics.median(seconds["ours"]),
        "bare_frames_per_s": frames["bare"] / statistics.median(seconds["bare"]),
        "feed_over_bare": statistics.median(ratios), "feed_over_bare_rounds": ratios,
        "feed_over_bare_cpu": statistics.median(cpu_ratios), "feed_over_bare_cpu_rounds": cpu_ratios,
        "load_avg_after": list(os.getloadavg()),
    }))


if __name__ == "__main__":
    main()
