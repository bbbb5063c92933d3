"""The feed: avepipe's extraction path with the CNNs removed vs bare PyAV decoding, one worker each.

- ``ours``: ``avepipe.extraction._extract_all`` with one decoder worker, VGG-19 replaced by a module
  returning zeros (the uint8 staging, preprocessing and batching stay) and VGGish by an encoder
  returning zeros: what is left is decoding, frame selection and conversion, the reuse check,
  the queue (pixels through shared memory), audio decoding and the assembly of the maps - the
  rate at which avepipe can feed any CNN. Each call starts its own worker, as one ``avepipe
  extract`` run does.
- ``bare``: one process decoding the same clips with PyAV, with the decoder threading avepipe uses
  (``thread_type = "AUTO"``), converting with one reused ``VideoReformatter`` per clip the same
  number of frames per second (16, the first frame at or after each target time) to 224x224 RGB.
  Video only: no audio, no reuse check, no queue, no worker to start - the floor. The issue
  compares extraction with "bare decoding with a reused converter", so the audio avepipe must
  decode counts against it (about 6% of the bare time here).
- ``startup``: a pool of one worker started and stopped with nothing to decode (spawn and imports).

Clips are generated H.264 + AAC (``benchmarks/_videos.py``, 640x360 at 30 fps). Rounds alternate
(ours, bare, startup, ours, ...). Figures: the median over rounds of ``bare_s / ours_s``
(``feed_over_bare``, wall clock); of the same with CPU seconds, the worker's included
(``feed_over_bare_cpu``: less sensitive to other jobs on a shared machine); and of
``bare_s / (ours_s - startup_s)`` (``feed_over_bare_after_startup``, derived: the rate once the
worker is running, what a folder of many videos sees). ``worker_over_bare_cpu_after_startup``
(derived) is ``bare_cpu_s / (ours_workers_cpu_s - startup_cpu_s)``: the decoder worker's own cost
per frame against bare decoding, leaving out the main process (which on a GPU box has a core of
its own and hands preprocessing to the GPU). Prints one JSON line, with the CPU model and flags.
Not run by the tests.

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


def startup(config) -> int:
    """One decoder worker started and stopped with nothing to decode: the pool's fixed cost per run
    (spawning, imports), which ``ours`` pays once per call."""
    from avepipe.extract.workers import DecoderPool

    with DecoderPool(1, config) as pool:
        process, tasks = pool._workers[0]   # no public way to wait for an idle worker: not needed elsewhere
        tasks.put(None)
        process.join()
    return 0


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of its finished children (the decoder workers, joined by then)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def timed(run) -> tuple[int, float, float, float]:
    """``(run's result, wall seconds, CPU seconds here, CPU seconds in child processes)``."""
    wall, (own, children) = time.perf_counter(), cpu_seconds()
    result = run()
    own_after, children_after = cpu_seconds()
    return result, time.perf_counter() - wall, own_after - own, children_after - children


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
    seconds = {"ours": [], "bare": [], "startup": []}
    cpu = {"ours": [], "bare": [], "startup": []}
    workers_cpu = []
    frames = {}
    with tempfile.TemporaryDirectory() as folder:
        clips = [write_clip(Path(folder) / f"clip{i}.mp4", args.seconds, 30, seed=i) for i in range(args.videos)]
        ours(clips[:1], visual, config, args.batch_size)          # warm-up of both
        bare(clips[:1])
        for _ in range(args.rounds):
            for name, run in (("ours", lambda: ours(clips, visual, config, args.batch_size)),
                              ("bare", lambda: bare(clips)), ("startup", lambda: startup(config))):
                frames[name], wall, here, children = timed(run)
                seconds[name].append(wall)
                cpu[name].append(here + children)
                if name == "ours":
                    workers_cpu.append(children)
    ratios = [b / o for o, b in zip(seconds["ours"], seconds["bare"])]
    cpu_ratios = [b / o for o, b in zip(cpu["ours"], cpu["bare"])]
    steady = [b / (o - s) for o, b, s in zip(seconds["ours"], seconds["bare"], seconds["startup"])]
    worker_steady = [b / (w - s) for w, b, s in zip(workers_cpu, cpu["bare"], cpu["startup"])]
    print(json.dumps({
        "benchmark": "feed", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "videos": args.videos, "seconds": args.seconds, "source_fps": 30, "size": "640x360",
        "frames": frames, "rounds": args.rounds, "ours_s": seconds["ours"], "bare_s": seconds["bare"],
        "startup_s": seconds["startup"], "startup_cpu_s": cpu["startup"],
        "ours_cpu_s": cpu["ours"], "ours_workers_cpu_s": workers_cpu, "bare_cpu_s": cpu["bare"],
        "ours_frames_per_s": frames["ours"] / statistics.median(seconds["ours"]),
        "bare_frames_per_s": frames["bare"] / statistics.median(seconds["bare"]),
        "feed_over_bare": statistics.median(ratios), "feed_over_bare_rounds": ratios,
        "feed_over_bare_cpu": statistics.median(cpu_ratios), "feed_over_bare_cpu_rounds": cpu_ratios,
        "feed_over_bare_after_startup": statistics.median(steady), "feed_over_bare_after_startup_rounds": steady,
        "worker_over_bare_cpu_after_startup": statistics.median(worker_steady),
        "worker_over_bare_cpu_after_startup_rounds": worker_steady,
        "load_avg_after": list(os.getloadavg()),
    }))


if __name__ == "__main__":
    main()
