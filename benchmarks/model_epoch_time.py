"""Training time per epoch and peak memory of every registered event model, beside PSP's.

On an AVE-sized stand-in cache (4,143 videos x 10 segments of random features with the real
dimensions, written once by benchmarks/train_throughput.py's writer), each model and setting
runs in its own child process (so its peak RSS is its own): the videos its timed steps read
held in memory (`FeatureDataset`; peak RSS is then the model's activations and weights plus
those videos, not a whole epoch's data), the model's authors' recipe (batch size, optimiser,
clipping), avepipe's `Trainer`. One warm-up pass of ``--steps`` batches, then ``--steps`` timed batches; the epoch
time is projected to AVE's 3,339 training videos at the recipe's batch size, plus a timed
prediction pass projected to the 402 validation videos. Prints one JSON line with each
model's seconds per epoch and peak RSS, and both as ratios to PSP's measured in the same run.

    python benchmarks/model_epoch_time.py [--models psp,cpsp,...] [--settings fully,weakly] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._child import peak_rss_mb, run_child  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from benchmarks.train_throughput import VIDEOS, write_annotations, write_synthetic_cache  # noqa: E402

T, TRAIN_VIDEOS, VAL_VIDEOS = 10, 3339, 402


def measure(model: str, setting: str, cache: Path, annotations: Path, steps: int) -> dict:
    """Seconds per training step and per predicted video of one model, in this process."""
    import torch
    from torch.utils.data import Subset

    from avepipe.data.annotations import load_annotations
    from avepipe.data.dataset import FeatureDataset
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.event.training import Trainer, defaults_for, predict_dataset
    from avepipe.run.seeding import seed_everything

    labels = load_annotations(annotations)
    seed_everything(0)
    config = defaults_for(model, setting, epochs=2)
    net = build_model(model, setting, num_classes=len(labels.classes) - 1)
    batch = config.batch_size
    # Only the videos the timed steps read are held in memory (the epoch is projected from them).
    dataset = FeatureDataset([cache], labels, labels.video_ids[:(steps + 1) * batch], in_memory=True)
    train = Subset(dataset, range(steps * batch))
    val = Subset(dataset, range(steps * batch, len(dataset)))
    trainer = Trainer(net, config, train, val, tempfile.mkdtemp(), labels.classes, ExtractorConfig(segments=T),
                      device="cpu", progress=False)
    trainer.train_epoch(1)                        # warm-up: allocator, oneDNN kernels
    started = time.perf_counter()
    trainer.train_epoch(2)
    step_s = (time.perf_counter() - started) / steps
    started = time.perf_counter()
    predict_dataset(trainer.net, val, batch, trainer.device)
    predict_s = (time.perf_counter() - started) / batch
    return {"model": model, "setting": setting, "batch_size": batch, "step_s": step_s,
            "epoch_s": math.ceil(TRAIN_VIDEOS / batch) * step_s + VAL_VIDEOS * predict_s,
            "parameters": sum(p.numel() for p in net.parameters()), "threads": torch.get_num_threads(),
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avepipe_bench_ave.h5",
                        help="synthetic cache (written once, reused)")
    parser.add_argument("--models", help="comma-separated (default: every registered model)")
    parser.add_argument("--settings", default="fully,weakly")
    parser.add_argument("--steps", type=int, default=4, help="timed batches per model")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SETTING"), help=argparse.SUPPRESS)
    parser.add_argument("--annotations", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.cache, args.annotations, args.steps)))
        return
    from avepipe.models import registry

    write_synthetic_cache(args.cache, VIDEOS, "float16")
    args.annotations = args.cache.with_suffix(".annotations.txt")
    write_annotations(args.annotations, VIDEOS)
    models = args.models.split(",") if args.models else registry.names()
    results = []
    for setting in args.settings.split(","):
        for model in ["psp"] + [m for m in models if m != "psp"]:
            if setting in registry.get(model).settings:
                results.append(run_child(__file__, ["--child", model, setting, "--cache", str(args.cache),
                                                    "--annotations", str(args.annotations),
                                                    "--steps", str(args.steps)]))
    for result in results:
        psp = next(r for r in results if r["model"] == "psp" and r["setting"] == result["setting"])
        result["epoch_time_over_psp"] = result["epoch_s"] / psp["epoch_s"]
        result["peak_rss_over_psp"] = result["peak_rss_mb"] / psp["peak_rss_mb"]
    print(json.dumps({"benchmark": "model_epoch_time", "videos": VIDEOS, "load_average": os.getloadavg(),
                      "train_videos": TRAIN_VIDEOS,
                      "val_videos": VAL_VIDEOS, "timed_steps": args.steps, "machine": machine(),
                      "models": results}))


if __name__ == "__main__":
    main()
