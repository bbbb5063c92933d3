"""How well a constant guess scores on ``avepipe synth`` boxes, per object size.

For each ``--object-size``: generate a set, fit the best fixed cell on the training videos'
boxes and score it, and a random cell, on the validation + test videos (peak-in-box and AUC,
avepipe/source/baselines.py). A localiser is only worth its name well above these. Prints one
JSON line with the CPU model.

    python benchmarks/synth_fixed_cell.py [--sizes 0.12,0.2,0.33] [--videos 60]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402


def main() -> None:
    from avepipe.data.synth import generate_dataset
    from avepipe.source.api import load_boxes
    from avepipe.source.baselines import Samples, baseline_metrics

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0.12,0.2,0.33")
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = 160, 120
    rows = []
    for size in (float(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as out:
            dataset = generate_dataset(out, videos=args.videos, size=(width, height), fps=4, seed=args.seed,
                                       object_size=size, progress=False)
            boxes = load_boxes(dataset.boxes_path)

        def samples(ids):
            pairs = [(entry.boxes[t], entry.frame_size) for i in ids for entry in [boxes[i]] for t in sorted(entry.boxes)]
            return Samples([b for b, _ in pairs], [s for _, s in pairs])

        train, scored = samples(dataset.splits["train"]), samples(dataset.splits["val"] + dataset.splits["test"])
        area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in scored.boxes) / len(scored) / (width * height)
        found = baseline_metrics(train, scored)
        rows.append({"object_size": size, "box_share_of_frame": round(area, 3), "scored_seconds": len(scored),
                     **{f"{name}_{k}": round(found[name][k], 3) for name in ("fixed_cell", "random_cell")
                        for k in ("peak_in_box", "auc")}})
    print(json.dumps({"benchmark": "synth_fixed_cell", **machine(),
                      "videos": args.videos, "seed": args.seed, "rows": rows}))


if __name__ == "__main__":
    main()
