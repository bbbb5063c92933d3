"""Latency and peak memory of `avepipe localize`, printed as one JSON line.

- cold: a fresh process imports avepipe, loads the model and both backbones and localises
  a 10 s clip (``--short-fps``, default 30 fps); warm: the same Localizer localises it again.
  In the same process, after that: the CNN alone (VGG-19 on the engine the Localizer chose,
  over as many frames as the clip gave it, 10 x ``--fps``) and VGGish alone (10 s of audio).
  ``cold_over_cnn`` is issue 25's target (<= 1.5); the rest of the cold time is broken down:
  imports, model load (weights read and hashed, engine built), VGGish, and decoding with
  everything else (the localisation minus the CNN and VGGish times measured alone).
- memory: peak RSS of a fresh process localising the 10 s video and a long one
  (default 10 minutes); the ratio shows whether memory grows with video length
  beyond the features themselves (600 x 7 x 7 x 512 float32 = 60 MB for 10 min).
  ``--long-seconds 0`` skips it.

The weights are random but written as the real files (torchvision's VGG-19 ``.pth`` with its
classifier, 548 MB; a ``pytorch_vggish.pth``) and found through ``AVEPIPE_VGG19_WEIGHTS`` /
``AVEPIPE_VGGISH_WEIGHTS``: the child reads and hashes them as a user's ``avepipe localize``
does, and never pays the random initialisation a user never pays. Each measurement runs in its
own process and reports that process's own peak RSS (``VmHWM``, benchmarks/_child.py).

    python benchmarks/localize_latency.py [--long-seconds 600] [--source-fps 2] [--short-fps 30] [--fps 16]
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()       # before any import: the child's imports are part of its cold time

import argparse
import json
import os
import sys
import tempfile
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


def write_weight_files(folder: Path) -> dict[str, str]:
    """Random VGG-19 and VGGish weights in the real files' layouts; the environment that makes avepipe use them."""
    import torch

    from avepipe.extract.backbones import _he_init, _seeded
    from avepipe.extract.vgg19 import vgg19_features
    from avepipe.extract.vggish import VGGish

    generator = torch.Generator().manual_seed(0)
    vgg = {f"features.{k}": v for k, v in _seeded(vgg19_features, _he_init, 0).state_dict().items()}
    for index, (rows, columns) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        vgg[f"classifier.{index}.weight"] = torch.randn(rows, columns, generator=generator) / columns ** 0.5
        vgg[f"classifier.{index}.bias"] = torch.zeros(rows)
    paths = {"AVEPIPE_VGG19_WEIGHTS": folder / "vgg19-random.pth", "AVEPIPE_VGGISH_WEIGHTS": folder / "vggish-random.pth"}
    torch.save(vgg, paths["AVEPIPE_VGG19_WEIGHTS"])
    torch.save(_seeded(VGGish, _he_init, 0).state_dict(), paths["AVEPIPE_VGGISH_WEIGHTS"])
    return {name: str(path) for name, path in paths.items()}


def make_checkpoint(path: Path, fps: int) -> Path:
    from avepipe.extract.backbones import build_encoders
    from avepipe.models import build_model
    from avepipe.models.checkpoint import save_checkpoint

    _, _, extractor = build_encoders(fps=fps, device="cpu", engine="torch-eager")     # weights from the environment
    names = [f"class {i}" for i in range(28)] + ["background"]
    return save_checkpoint(path, build_model("psp", "fully"), names, extractor)


def child(mode: str, video: str, checkpoint: str) -> None:
    """Runs in a fresh process; prints one JSON object."""
    from avepipe import Localizer
    import avepipe.localizer  # noqa: F401  (what `from avepipe import Localizer` loads lazily)

    marks = [("imported", time.perf_counter(), time.process_time())]
    localizer = Localizer.from_checkpoint(checkpoint, device="cpu")
    marks.append(("built", time.perf_counter(), time.process_time()))
    result = localizer.localize(video)
    marks.append(("localized", time.perf_counter(), time.process_time()))
    (_, imported, imported_cpu), (_, built, built_cpu), (_, done, done_cpu) = marks
    out = {"segments": len(result.segments), "engine": localizer.visual_encoder.engine,
           "import_s": imported - STARTED, "model_load_s": built - imported, "localize_s": done - built,
           "cold_s": done - STARTED, "import_cpu_s": imported_cpu, "model_load_cpu_s": built_cpu - imported_cpu,
           "localize_cpu_s": done_cpu - built_cpu, "cold_cpu_s": done_cpu}
    if mode == "latency":
        again = time.perf_counter()
        localizer.localize(video)
        out["warm_s"] = time.perf_counter() - again
        out.update(alone(localizer, len(result.segments)))
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


def alone(localizer, seconds: int) -> dict:
    """The CNN over the frames ``seconds`` of video give it, and VGGish over ``seconds`` of audio, each timed alone."""
    frames = np.random.default_rng(0).integers(0, 256, (seconds * localizer.extractor.fps, 224, 224, 3), np.uint8)
    started, cpu_started = time.perf_counter(), time.process_time()
    localizer.visual_encoder.encode(frames)
    cnn, cnn_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    waveform = np.random.default_rng(1).standard_normal(seconds * 16000).astype(np.float32) * 0.1
    started, cpu_started = time.perf_counter(), time.process_time()
    localizer.audio_encoder.encode(waveform, seconds)
    return {"cnn_frames": len(frames), "cnn_s": cnn, "cnn_cpu_s": cnn_cpu, "vggish_s": time.perf_counter() - started,
            "vggish_cpu_s": time.process_time() - cpu_started}


def measure(mode: str, video: Path, checkpoint: Path) -> dict:
    return run_child(__file__, ["--child", mode, str(video), str(checkpoint)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-seconds", type=int, default=600, help="length of the long video (default 10 min)")
    parser.add_argument("--source-fps", type=int, default=2,
                        help="frame rate of the generated videos; the CNN runs once per distinct frame, so a "
                             "low rate keeps the long video's CPU time bearable (default 2)")
    parser.add_argument("--short-fps", type=int, default=30, help="frame rate of the 10 s clip (default 30)")
    parser.add_argument("--fps", type=int, default=16, help="extraction frames per second (default 16, as AVE)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.update(write_weight_files(tmp))        # the children inherit it
        checkpoint = make_checkpoint(tmp / "ckpt", args.fps)
        short = write_clip(tmp / "short.mp4", 10, args.short_fps)
        latency = measure("latency", short, checkpoint)
        memory = {}
        if args.long_seconds:
            long = write_clip(tmp / "long.mp4", args.long_seconds, args.source_fps)
            memory = memory_figures(measure("memory", short, checkpoint), measure("memory", long, checkpoint),
                                    args.long_seconds)
    print(json.dumps({
        "benchmark": "localize_latency", "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "weights": "random, in the real files' formats, read and hashed as a user's are",
        "short_fps": args.short_fps, "source_fps": args.source_fps, "extract_fps": args.fps,
        **latency_figures(latency), **memory,
        "load_avg_after": list(os.getloadavg()),
    }))


def latency_figures(latency: dict) -> dict:
    """The 10 s clip: cold time, its parts, and the ratio to the CNN alone, in CPU time and in wall time.

    CPU time (this process's, all its threads) is the target's measure: on a shared machine wall
    time also counts waiting for a core, which differed between the cold run and the CNN-alone run.
    """
    figures = {"engine": latency["engine"], "cnn_frames": latency["cnn_frames"]}
    for clock, suffix in (("cpu", "_cpu_s"), ("wall", "_s")):
        part = {name: latency[name + suffix] for name in ("cold", "cnn", "import", "model_load", "vggish", "localize")}
        figures[clock] = {
            "cold_s_10s_video": round(part["cold"], 2), "cnn_s": round(part["cnn"], 2),
            "cold_over_cnn": round(part["cold"] / part["cnn"], 3),
            "import_s": round(part["import"], 2), "model_load_s": round(part["model_load"], 2),
            "vggish_s": round(part["vggish"], 2),
            "decode_and_rest_s": round(part["localize"] - part["cnn"] - part["vggish"], 2),
            "overhead_over_cnn": round((part["cold"] - part["cnn"]) / part["cnn"], 3)}
    figures["cold_over_cnn"] = figures["cpu"]["cold_over_cnn"]
    return {**figures, "warm_s_10s_video": round(latency["warm_s"], 2),
            "peak_rss_mb_10s_latency_run": round(latency["peak_rss_mb"], 1)}


def memory_figures(short: dict, long: dict, long_seconds: int) -> dict:
    features_mb = long_seconds * (7 * 7 * 512 + 128) * 4 / 2**20
    return {"peak_rss_mb_10s": round(short["peak_rss_mb"], 1),
            "long_seconds": long_seconds, "peak_rss_mb_long": round(long["peak_rss_mb"], 1),
            "long_video_features_mb": round(features_mb, 1),
            "rss_ratio_long_vs_10s": round(long["peak_rss_mb"] / short["peak_rss_mb"], 3),
            "rss_growth_beyond_features_mb": round(long["peak_rss_mb"] - short["peak_rss_mb"] - features_mb, 1)}


if __name__ == "__main__":
    main()
