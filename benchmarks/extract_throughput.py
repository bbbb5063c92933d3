"""Extraction throughput: the CNN bound, `avepipe extract` end to end, and the JPEG-dump practice.

Prints ONE JSON line. Random backbones (the speed of VGG-19 does not depend on its
weights). Figures:
- bound: VGG-19 (with preprocessing) alone on preloaded frames, same batch size and precision;
- e2e_30fps / e2e_10fps: the `avepipe extract` command on 640x360 H.264+AAC clips, frames/s
  counted as sampled frames (segments x 16), both over the whole command and excluding its fixed
  start-up (measured by rerunning it over the finished cache, which decodes nothing);
- baseline_30fps: frames dumped to JPEG at 16 fps with PyAV + PIL, reloaded with PIL
  (224x224 bilinear), the same CNN, the same audio path;
- drift: the opt-in precisions against float32, cosine of pool5 maps, and their speed.
Every speed is given per wall-clock second and per CPU second (all threads and processes,
decoder workers included): on a machine shared with other jobs wall-clock ratios are noise,
while CPU seconds per frame still compare the work each path does.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import machine  # noqa: E402
from benchmarks._videos import write_clip  # noqa: E402
from avepipe.extract.batching import FrameBatcher  # noqa: E402
from avepipe.extract.decode import decode_audio  # noqa: E402
from avepipe.extract.backbones import build_encoders  # noqa: E402
from avepipe.extract.sampling import frame_for_targets, target_times  # noqa: E402

FPS = 16


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bound(visual, batch_size: int, precision: str, frames: int) -> dict:
    batcher = FrameBatcher(visual, batch_size, precision)
    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    for _ in range(batch_size):  # warm-up batch (allocations, kernel selection)
        batcher.add(pixels, 0)
    batcher.drain()
    started, cpu = time.perf_counter(), time.process_time()
    done = 0
    while done < frames:
        for _ in range(batch_size):
            batcher.add(pixels, 0)
        done += len(batcher.drain())
    return {"frames_per_s": done / (time.perf_counter() - started),
            "frames_per_cpu_s": done / (time.process_time() - cpu)}


def run_cli(folder: Path, cache: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (the command and its decoder workers) of one `avepipe extract` run."""
    command = [sys.executable, "-m", "avepipe", "extract", str(folder), "-o", str(cache),
               "--random-backbones", "0", *args]
    started, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"extract failed: {result.stderr[-2000:]}")
    return time.perf_counter() - started, _children_cpu() - cpu


def e2e(folder: Path, videos: int, seconds: int, args: list[str]) -> dict:
    cache = folder.parent / f"{folder.name}.h5"
    wall, cpu = run_cli(folder, cache, args)
    startup, startup_cpu = run_cli(folder, cache, args)  # rerun over the finished cache: start-up only
    frames = videos * seconds * FPS
    return {"frames_per_s": frames / wall, "frames_per_s_excl_startup": frames / max(wall - startup, 1e-9),
            "frames_per_cpu_s_excl_startup": frames / max(cpu - startup_cpu, 1e-9),
            "videos_per_s": videos / wall, "wall_s": wall, "startup_s": startup, "cpu_s": cpu,
            "startup_cpu_s": startup_cpu}


def baseline(paths: list[Path], visual, audio, batch_size: int, precision: str, scratch: Path) -> dict:
    """The common research practice: dump sampled frames to JPEG, reload with PIL, run the CNN."""
    started, cpu = time.perf_counter(), time.process_time()
    frames = 0
    for path in paths:
        jpegs = scratch / path.stem
        jpegs.mkdir()
        with av.open(str(path)) as container:  # dump: every target's frame, full size, as a JPEG
            stream = container.streams.video[0]
            decoded = [(float(f.pts * f.time_base), f.to_image()) for f in container.decode(stream)]
        pts = np.asarray([p for p, _ in decoded]) - decoded[0][0]
        segments = int(np.ceil(pts[-1] + 1e-9))
        for index, chosen in enumerate(frame_for_targets(pts, target_times(segments, FPS))):
            decoded[chosen][1].save(jpegs / f"{index:06d}.jpg", quality=95)
        del decoded
        batcher = FrameBatcher(visual, batch_size, precision)
        maps = []
        for jpeg in sorted(jpegs.iterdir()):  # reload, resize, CNN
            image = Image.open(jpeg).convert("RGB").resize((224, 224), Image.BILINEAR)
            batcher.add(np.asarray(image), None)
            if batcher.full:
                maps += [m for _, m in batcher.run()]
        maps += [m for _, m in batcher.drain()]
        frames += len(maps)
        np.stack(maps).reshape(segments, FPS, 7, 7, 512).mean(axis=1)
        audio.encode(decode_audio(path), segments)
    wall = time.perf_counter() - started
    return {"frames_per_s": frames / wall, "frames_per_cpu_s": frames / (time.process_time() - cpu),
            "wall_s": wall}


def drift(visual, path: Path, frames: int, batch_size: int, precisions: list[str]) -> dict:
    with av.open(str(path)) as container:
        images = [f.to_ndarray(width=224, height=224, format="rgb24")
                  for _, f in zip(range(frames), container.decode(video=0))]
    results = {}
    reference = None
    for precision in ["fp32", *precisions]:
        batcher = FrameBatcher(visual, min(batch_size, frames), precision)
        for image in images:
            batcher.add(image, None)
        cpu = time.process_time()
        maps = np.stack([m for _, m in batcher.drain()]).reshape(len(images), -1).astype(np.float64)
        speed = len(images) / (time.process_time() - cpu)
        if reference is None:
            reference = maps
            results["fp32_frames_per_cpu_s"] = speed
            continue
        cos = (maps * reference).sum(1) / (np.linalg.norm(maps, axis=1) * np.linalg.norm(reference, axis=1))
        results[precision] = {"frames_per_cpu_s": speed, "cosine_mean": float(cos.mean()),
                              "cosine_min": float(cos.min()),
                              "max_rel_err": float(np.abs(maps - reference).max() / np.abs(reference).max())}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2, help="clips per set")
    parser.add_argument("--seconds", type=int, default=10, help="length of each clip")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--workers", type=int, default=None, help="decoder workers (default: the command's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--bound-frames", type=int, default=96)
    parser.add_argument("--drift-frames", type=int, default=8, help="0 skips the precision drift measurement")
    parser.add_argument("--drift-precisions", default="bf16", help="comma-separated, measured against fp32")
    args = parser.parse_args()

    visual, audio, _ = build_encoders(random_seed=0, device=args.device)
    cli = ["--batch-size", str(args.batch_size), "--precision", args.precision,
           "--device", str(visual.device)] + (["--workers", str(args.workers)] if args.workers is not None else [])
    figures: dict = {"machine": {**machine(), "device": str(visual.device)},
                     "videos": args.videos, "seconds": args.seconds, "batch_size": args.batch_size,
                     "precision": args.precision}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {}
        for rate in (30, 10):
            folder = tmp / f"set{rate}"
            folder.mkdir()
            sets[rate] = [write_clip(folder / f"clip{i}.mp4", args.seconds, rate, seed=i) for i in range(args.videos)]
        figures["bound"] = bound(visual, args.batch_size, args.precision, args.bound_frames)
        figures["e2e_30fps"] = e2e(tmp / "set30", args.videos, args.seconds, cli)
        figures["e2e_10fps"] = e2e(tmp / "set10", args.videos, args.seconds, cli)
        (tmp / "jpeg").mkdir()
        figures["baseline_30fps"] = baseline(sets[30], visual, audio, args.batch_size, args.precision, tmp / "jpeg")
        if args.drift_frames:
            figures["drift"] = drift(visual, sets[30][0], args.drift_frames, args.batch_size,
                                     [p for p in args.drift_precisions.split(",") if p])
    bound_figures, base = figures["bound"], figures["baseline_30fps"]
    for key in ("e2e_30fps", "e2e_10fps"):
        run = figures[key]
        run["over_bound"] = run["frames_per_s"] / bound_figures["frames_per_s"]
        run["over_bound_excl_startup"] = run["frames_per_s_excl_startup"] / bound_figures["frames_per_s"]
        run["over_bound_cpu"] = run["frames_per_cpu_s_excl_startup"] / bound_figures["frames_per_cpu_s"]
    e2e30 = figures["e2e_30fps"]
    figures["e2e_over_baseline_30fps"] = e2e30["frames_per_s"] / base["frames_per_s"]
    figures["e2e_over_baseline_30fps_excl_startup"] = e2e30["frames_per_s_excl_startup"] / base["frames_per_s"]
    figures["e2e_over_baseline_30fps_cpu"] = e2e30["frames_per_cpu_s_excl_startup"] / base["frames_per_cpu_s"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
