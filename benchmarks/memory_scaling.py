"""Peak memory of extracting a 60 s and a 600 s video: must not grow with the video's length.

Prints ONE JSON line. Each extraction runs `avepipe extract` inside a fresh child
process, which reports its own peak RSS (VmHWM, the CNN side) and the largest of its
decoder workers' own (their VmHWM, read every 0.1 s while they run: RUSAGE_CHILDREN would
report at least the main process's resident memory when it started them, after the
networks were built, whatever the workers used). The clips are 640x360 H.264 + AAC;
each picture is held for ``--hold`` seconds (static shots), so the CNN runs once per
shot (identical frames share a pass) while the decoder still selects 16 frames per
second: keeping them would be 2.4 MB per second of video (1.4 GB at 600 s).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import machine  # noqa: E402
from benchmarks._videos import write_clip  # noqa: E402

_CHILD = """
import json, sys
from avepipe.commands.extract import extract
from benchmarks._child import ChildrenPeakRss, peak_rss_mb
with ChildrenPeakRss("--multiprocessing-fork") as workers:    # spawned decoders, not the resource tracker
    try:
        extract.main(sys.argv[1:], standalone_mode=False)
    except SystemExit as stop:
        assert not stop.code, stop.code
print(json.dumps({"main_rss_mb": peak_rss_mb(), "worker_rss_mb": workers.peak_mb}))
"""


def measure(clip: Path, cache: Path, workers: int, fps: int, batch_size: int) -> dict:
    command = [sys.executable, "-c", _CHILD, str(clip.parent), "-o", str(cache), "--random-backbones", "0",
               "--device", "cpu", "--workers", str(workers), "--fps", str(fps),
               "--batch-size", str(batch_size)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"extract failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=60, help="seconds of the short video")
    parser.add_argument("--long", type=int, default=600, help="seconds of the long video")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds each picture is held")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="CNN batch; both videos must fill whole batches, or the short one's peak is lower "
                             "only because its single batch is smaller (VGG-19 activations dominate RSS)")
    parser.add_argument("--fps", type=int, default=16, help="sampled frames per second")
    parser.add_argument("--workers", default="0,1", help="comma-separated worker counts to measure")
    args = parser.parse_args()

    figures: dict = {"fps": args.fps, "hold_s": args.hold, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for seconds in (args.short, args.long):
            (tmp / f"v{seconds}").mkdir()
            clips[seconds] = write_clip(tmp / f"v{seconds}" / f"clip{seconds}.mp4", seconds, 30, hold_seconds=args.hold)
        for workers in [int(w) for w in args.workers.split(",")]:
            runs = {seconds: measure(clip, tmp / f"c{seconds}-{workers}.h5", workers, args.fps, args.batch_size)
                    for seconds, clip in clips.items()}
            short, long = runs[args.short], runs[args.long]
            figures[f"workers_{workers}"] = {
                f"{args.short}s": short, f"{args.long}s": long,
                "main_rss_ratio": long["main_rss_mb"] / short["main_rss_mb"],
                "worker_rss_ratio": (long["worker_rss_mb"] / short["worker_rss_mb"]) if workers else None,
            }
    print(json.dumps({**figures, "machine": machine()}))


if __name__ == "__main__":
    main()
