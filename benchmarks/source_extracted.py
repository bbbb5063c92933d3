"""FNAC and the plain contrastive baseline on features EXTRACTED from ``avepipe synth`` videos, over seeds.

The user's path, command by command (each a subprocess of this interpreter): for each seed S,
``avepipe synth DIR --videos N --seed S --object-size 0.12`` (small objects, distractors, the
AVE background cases), ``avepipe extract DIR/videos --random-backbones S --fps F``, then
``avepipe source train`` for FNAC and for the baseline (``--no-fns --no-tne``) with
``--boxes DIR/frame_boxes.json`` (model selection on the validation videos), and
``avepipe source evaluate ... --linear-probe --json`` on the held-out test videos: the model
beside a random cell, the best fixed cell and the supervised probe, fitted on the training
videos. Videos, caches and finished runs are kept under ``--work`` and reused (extraction
dominates; runs trained elsewhere with the same commands are picked up).
Prints one JSON line (machine, per-seed and mean figures); ``--picture PATH`` draws FNAC's map
on a held-out frame of the first seed.

    python benchmarks/source_extracted.py --work /tmp/src [--seeds 3] [--videos 300] [--fps 1]
        [--train-option=--epochs=60]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402

KEYS = ("peak_in_box", "auc", "ciou")
VARIANTS = {"fnac": [], "baseline": ["--no-fns", "--no-tne"]}
PICTURE_WIDTH = 480


def avepipe(*args: str) -> str:
    """Run one avepipe command in this interpreter; its stdout (stderr passes through)."""
    done = subprocess.run([sys.executable, "-m", "avepipe", *map(str, args)], check=True, stdout=subprocess.PIPE,
                          text=True)
    return done.stdout


def prepare(data_dir: Path, seed: int, videos: int, object_size: float, fps: int) -> Path:
    """Synthesise and extract one seed's videos unless already there; the feature cache's path."""
    if not (data_dir / "frame_boxes.json").is_file():
        avepipe("synth", data_dir, "--videos", videos, "--seed", seed, "--object-size", object_size)
    cache = data_dir / f"features_fps{fps}.h5"
    avepipe("extract", data_dir / "videos", "-o", cache, "--random-backbones", seed, "--fps", fps)  # resumes
    return cache


def train_and_score(cache: Path, boxes: Path, run_dir: Path, seed: int, options: list[str]) -> dict:
    """``source train`` (a stopped run is resumed; a finished one has nothing left to do) then
    ``source evaluate --linear-probe --json`` on the test split."""
    resume = ["--resume"] if (run_dir / "last").exists() else []
    avepipe("source", "train", cache, "-o", run_dir, "--boxes", boxes, "--seed", seed, *options, *resume)
    return json.loads(avepipe("source", "evaluate", run_dir / "best", cache, "--boxes", boxes,
                              "--linear-probe", "--json"))


def held_out_picture(path: Path, data_dir: Path, cache: Path, run_dir: Path, title: str) -> None:
    """FNAC's map over the frame at t of the first boxed second of the first test video (not chosen for
    looks), with that second's box, drawn as ``avepipe localize --heatmaps`` draws it but larger, so the
    title fits."""
    from avepipe.data.cache import CacheSet
    from avepipe.extract.decode import decode_video
    from avepipe.source.api import load_boxes, load_source_localizer
    from avepipe.source.evaluation import source_maps
    from avepipe.source.heatmaps import overlay_heatmap, to_frame_aspect

    model, info = load_source_localizer(run_dir / "best")
    features = CacheSet([cache])
    boxes = load_boxes(data_dir / "frame_boxes.json", sample_fps=features.config.fps)
    video_id = next(v for v in info.extra["splits"]["test"] if v in boxes and boxes[v].boxes)
    second = min(boxes[video_id].boxes)
    grid = source_maps(model, features.read(video_id))[second]
    square = decode_video(data_dir / "videos" / f"{video_id}.mp4", fps=1, size=PICTURE_WIDTH).frames[second]
    frame = to_frame_aspect(square, boxes[video_id].frame_size)
    scale = frame.shape[1] / boxes[video_id].frame_size[0]
    box = tuple(v * scale for v in boxes[video_id].boxes[second])
    overlay_heatmap(frame, grid, path, box=box, title=f"{title}: held-out video {video_id}, second {second}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for videos, caches and runs (reused)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--videos", type=int, default=300,
                        help="videos per seed (at 60 both models learn each video's background, not the object)")
    parser.add_argument("--object-size", type=float, default=0.12)
    parser.add_argument("--fps", type=int, default=1, help="frames per second the extractor samples")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--train-option", action="append", default=[],
                        help="extra `source train` option for both models, e.g. --train-option=--epochs=60")
    parser.add_argument("--tag", default="", help="suffix of the run folders, to keep variants apart")
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    options = ["--test-fraction", str(args.test_fraction)] + [o for opt in args.train_option for o in opt.split("=", 1)]
    rows = []
    for seed in range(args.seeds):
        data_dir = args.work / f"synth{seed}"
        cache = prepare(data_dir, seed, args.videos, args.object_size, args.fps)
        boxes = data_dir / "frame_boxes.json"
        row = {"seed": seed}
        for name, switches in VARIANTS.items():
            run_dir = args.work / f"runs{args.tag}" / f"{name}_fps{args.fps}_seed{seed}"
            report = train_and_score(cache, boxes, run_dir, seed, options + switches)
            row[name] = {k: round(report[k], 4) for k in KEYS}
            row.update({b: {k: round(v[k], 4) for k in KEYS} for b, v in report["baselines"].items()})
            row["test_seconds"], row["test_videos"] = report["samples"], report["videos"]
            if name == "fnac" and seed == 0 and args.picture:
                held_out_picture(args.picture, data_dir, cache, run_dir, "FNAC")
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    mean = {name: {k: round(statistics.mean(r[name][k] for r in rows), 4) for k in KEYS} for name in names}
    print(json.dumps({"benchmark": "source_extracted", **machine(), "videos": args.videos,
                      "object_size": args.object_size, "fps": args.fps, "test_fraction": args.test_fraction,
                      "train_options": options, "mean": mean, "per_seed": rows,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
