"""FNAC and the plain contrastive baseline beside a random cell, the best fixed cell and a linear
probe, on small-object feature-level data (benchmarks.generators.moving_sources), over seeds.

Each seed draws a training set and a held-out set of the same classes (objects of
``--object-cells`` x ``--object-cells`` of the 7x7 grid, one silent distractor), trains FNAC
and the baseline (no FNS, no TNE) with ``--schedule``, and scores them and the baselines on
the held-out seconds (fixed cell and probe fitted on the training seconds). Prints one JSON
line (CPU model, per-seed and mean figures); ``--picture PATH`` also draws FNAC's map on one
held-out second of the first seed.

    python benchmarks/source_baselines.py [--seeds 3] [--object-cells 2] [--schedule small-data]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402

KEYS = ("peak_in_box", "auc", "ciou")


def draw_second(path: Path, features, boxes: dict, model, spec) -> None:
    """A 224x224 picture of one second's layout (sounding object red, distractors blue, as drawn by the
    generator's cells) under FNAC's map, the true box in white."""
    from avepipe.source.evaluation import source_maps
    from avepipe.source.heatmaps import overlay_heatmap

    video = features[0]
    second = min(int(t) for t in boxes[video.video_id]["boxes"])
    box = boxes[video.video_id]["boxes"][str(second)]
    frame = np.full((224, 224, 3), 90, np.uint8)
    cells = video.visual[second].mean(axis=-1)                   # where objects add their patterns
    cell = 224 // 7
    for r, c in zip(*np.nonzero(cells > np.quantile(cells, 1 - 2 * spec.object_cells ** 2 / 49))):
        frame[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = (60, 90, 200)
    x0, y0, x1, y1 = (int(v) for v in box)
    frame[y0:y1, x0:x1] = (220, 40, 40)
    overlay_heatmap(frame, source_maps(model, video)[second], path, box=tuple(box),
                    title=f"FNAC, held-out second (object {spec.object_cells}x{spec.object_cells} cells)")


def main() -> None:
    from avepipe.models.checkpoint import load_checkpoint
    from avepipe.source.api import parse_boxes
    from avepipe.source.baselines import baseline_metrics
    from avepipe.source.evaluation import box_samples, model_maps
    from avepipe.source.metrics import evaluate_maps
    from avepipe.source.training import SCHEDULES, schedule_config, train_source_localizer
    from benchmarks.generators.moving_sources import InMemoryCache, MovingSourceSpec, make_moving_sources

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--test-videos", type=int, default=24)
    parser.add_argument("--object-cells", type=int, default=2)
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default="small-data")
    parser.add_argument("--epochs", type=int, help="override the schedule's epochs")
    parser.add_argument("--dim", type=int, default=64, help="embedding size (authors: 512)")
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    schedule = schedule_config(args.schedule, epochs=args.epochs)
    schedule = replace(schedule, model_options={"dim": args.dim, **schedule.model_options})
    started = time.perf_counter()
    rows = []
    for seed in range(args.seeds):
        spec = MovingSourceSpec(videos=args.videos, object_cells=args.object_cells, seed=seed)
        train_features, train_boxes = make_moving_sources(spec)
        test_features, test_boxes = make_moving_sources(replace(spec, videos=args.test_videos, seed=seed + 1000))
        train_cache, test_cache = InMemoryCache(train_features), InMemoryCache(test_features)
        _, train = box_samples(train_cache, parse_boxes(train_boxes), train_cache.ids, keep_visual=True)
        videos, scored = box_samples(test_cache, parse_boxes(test_boxes), test_cache.ids, keep_visual=True)
        row = {"seed": seed, **{name: {k: round(v[k], 4) for k in KEYS}
                                for name, v in baseline_metrics(train, scored, linear_probe=True).items()}}
        for name, switches in (("fnac", {}), ("baseline", {"use_fns": False, "use_tne": False})):
            with tempfile.TemporaryDirectory() as out:
                config = replace(schedule, seed=seed, **switches)
                checkpoint = train_source_localizer(train_cache, None, out, config, progress=False).best_dir
                model, _ = load_checkpoint(checkpoint, task="source")
            figures = evaluate_maps(model_maps(model, videos), scored.boxes, scored.frame_sizes)
            row[name] = {k: round(figures[k], 4) for k in KEYS}
            if name == "fnac" and seed == 0 and args.picture:
                draw_second(args.picture, test_features, test_boxes, model, spec)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    names = [k for k in rows[0] if k != "seed"]
    mean = {name: {k: round(statistics.mean(r[name][k] for r in rows), 4) for k in KEYS} for name in names}
    print(json.dumps({"benchmark": "source_baselines", **machine(),
                      "object_cells": args.object_cells, "train_videos": args.videos,
                      "test_seconds": len(scored), "schedule": args.schedule,
                      "settings": asdict(schedule), "mean": mean, "per_seed": rows,
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
