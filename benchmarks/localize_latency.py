"""Latency and peak memory of `avepipe localize`, printed as one JSON line.

- cold: a fresh process builds the model and both backbones and localises a 10 s
  video; warm: the same Localizer localises it again.
- memory: peak RSS of a fresh process localising the 10 s video and a long one
  (default 10 minutes); the ratio shows whether memory grows with video length
  beyond the features themselves (600 x 7 x 7 x 512 float32 = 60 MB for 10 min).

Backbones are seeded random (no weights are downloaded); they cost exactly what
the pretrained ones cost. Each measurement runs in its own process and reports
that process's own peak RSS (``VmHWM``, benchmarks/_child.py).

    python benchmarks/localize_latency.py [--long-seconds 600] [--source-fps 2] [--fps 16]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._child import peak_rss_mb, run_child  # noqa: E402
from benchmarks._machine import machine  # noqa: E402


def write_clip(path: Path, seconds: int, fps: int) -> Path:
    """A moving coloured square with a tone that changes every second (streamed, never all in memory)."""
    from avepipe.data.video_writer import write_test_video

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 255, size=(seconds, 3), dtype=np.uint8)

    def frames():
        for i in range(seconds * fps):
            frame = np.full((180, 320, 3), 40, np.uint8)
            x = 20 + (i * 7) % 240
            frame[60:120, x:x + 60] = colours[i // fps]
            yield frame

    t = np.arange(seconds * 16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * (300 + 50 * (t.astype(int) % 10)) * t)).astype(np.float32)
    return write_test_video(path, frames(), fps, audio=audio)


def make_checkpoint(path: Path, fps: int) -> Path:
    from avepipe.extract.backbones import build_encoders
    from avepipe.models import build_model
    from avepipe.models.checkpoint import save_checkpoint

    _, _, extractor = build_encoders(random_seed=0, fps=fps, device="cpu")
    names = [f"class {i}" for i in range(28)] + ["background"]
    return save_checkpoint(path, build_model("psp", "fully"), names, extractor)


def child(mode: str, video: str, checkpoint: str) -> None:
    """Runs in a fresh process; prints one JSON object."""
    started = time.perf_counter()
    from avepipe import Localizer

    localizer = Localizer.from_checkpoint(checkpoint, device="cpu")
    built = time.perf_counter()
    result = localizer.localize(video)
    cold = time.perf_counter() - started
    out = {"segments": len(result.segments), "build_s": built - started, "cold_s": cold}
    if mode == "latency":
        again = time.perf_counter()
        localizer.localize(video)
        out["warm_s"] = time.perf_counter() - again
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def measure(mode: str, video: Path, checkpoint: Path) -> dict:
    return run_child(__file__, ["--child", mode, str(video), str(checkpoint)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-seconds", type=int, default=600, help="length of the long video (default 10 min)")
    parser.add_argument("--source-fps", type=int, default=2,
                        help="frame rate of the generated videos; the CNN runs once per distinct frame, so a "
                             "low rate keeps the long video's CPU time bearable (default 2)")
    parser.add_argument("--fps", type=int, default=16, help="extraction frames per second (default 16, as AVE)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = make_checkpoint(tmp / "ckpt", args.fps)
        short = write_clip(tmp / "short.mp4", 10, args.source_fps)
        long = write_clip(tmp / "long.mp4", args.long_seconds, args.source_fps)
        latency = measure("latency", short, checkpoint)
        short_memory = measure("memory", short, checkpoint)
        long_memory = measure("memory", long, checkpoint)
    features_mb = args.long_seconds * (7 * 7 * 512 + 128) * 4 / 2**20
    print(json.dumps({
        "benchmark": "localize_latency",
        "machine": machine(),
        "backbones": "random (same cost as pretrained)",
        "source_fps": args.source_fps, "extract_fps": args.fps,
        "cold_s_10s_video": round(latency["cold_s"], 2), "model_and_backbone_build_s": round(latency["build_s"], 2),
        "warm_s_10s_video": round(latency["warm_s"], 2), "peak_rss_mb_10s": round(short_memory["peak_rss_mb"], 1),
        "long_seconds": args.long_seconds, "peak_rss_mb_long": round(long_memory["peak_rss_mb"], 1),
        "long_video_features_mb": round(features_mb, 1),
        "rss_ratio_long_vs_10s": round(long_memory["peak_rss_mb"] / short_memory["peak_rss_mb"], 3),
        "rss_growth_beyond_features_mb": round(long_memory["peak_rss_mb"] - short_memory["peak_rss_mb"]
                                               - features_mb, 1),
    }))


if __name__ == "__main__":
    main()
