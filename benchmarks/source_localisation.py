"""FNAC vs the plain contrastive baseline on the moving-sources set at a larger size.

Prints one JSON line: cIoU, AUC and peak-in-box of both, on held-out videos of the same
classes, trained in one seeded run. ``python benchmarks/source_localisation.py [--videos N]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # benchmarks.* (the generators) from the checkout

from benchmarks._machine import machine  # noqa: E402
from benchmarks.generators.source_experiment import compare_fnac_baseline
from benchmarks.generators.moving_sources import MovingSourceSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=400)
    parser.add_argument("--test-videos", type=int, default=100)
    parser.add_argument("--distractors", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = MovingSourceSpec(videos=args.videos, distractors=args.distractors, seed=args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = compare_fnac_baseline(out, spec, test_videos=args.test_videos, epochs=args.epochs,
                                       seed=args.seed, progress=True)
    keys = ("ciou", "auc", "peak_in_box", "mean_iou")
    figures = {f"{name}_{k}": round(result[name][k], 4) for name in ("fnac", "baseline") for k in keys}
    print(json.dumps({"benchmark": "source_localisation", "train_videos": args.videos,
                      "test_samples": result["fnac"]["samples"], "epochs": args.epochs, **figures,
                      "seconds": round(time.perf_counter() - start, 1), "machine": machine()}))


if __name__ == "__main__":
    main()
