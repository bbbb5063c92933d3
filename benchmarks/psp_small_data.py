"""Why PSP / CPSP do or do not fit a few dozen videos: an ablation on one extracted cache, one JSON line per run.

The issue (#26): on 42 training videos PSP's training accuracy stayed at the majority class's while
a linear probe on the same features reached 0.93. Each run here trains one variant at one seed on
the cache's own ``train/val/test_order.h5`` and records, per epoch, training, validation and test
segment accuracy, so a line says both whether the network fits its training data and what the
usual model selection (best validation epoch) gives on the held-out videos. Beside every line: the
majority class and the linear probe (avepipe.event.baselines), both fitted on the training split.

``authors`` and ``b8`` are the issue's runs (the authors' recipe; the same at batch 8); ``small`` is the
registry's small-data recipe and the ``small_*`` variants change one of its levers each (the AVPS weight,
tau, AVGA replaced by a position mean, lr, batch, dropout).

    python benchmarks/psp_small_data.py CACHE ANNOTATIONS SPLITS_DIR [--model psp] [--seeds 3] [--first-seed 0]
        [--variants authors,b8,small,...] [--epochs N]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402


class PositionMean(nn.Module):
    """AVGA replaced by a plain average over the 7x7 positions (uniform attention)."""

    def forward(self, audio, visual):
        batch, segments, height, width, _ = visual.shape
        uniform = visual.new_full((batch, segments, height, width), 1.0 / (height * width))
        return visual.mean(dim=(2, 3)), uniform


# name -> (recipe, schedule changes, build options, network changes). "authors" and "b8" are the runs
# (batch 128; batch 8 at a constant lr); the rest change one lever of the small-data recipe ("small").
SMALL = "small-data"
VARIANTS = {
    "authors": ("authors", {}, {}, {}),
    "b8": ("authors", {"batch_size": 8}, {}, {}),
    "small": (SMALL, {}, {}, {}),
    "small_avps1": (SMALL, {}, {}, {"avps_weight": 1.0}),
    "small_avps0": (SMALL, {}, {}, {"avps_weight": 0.0}),
    "small_tau_all": (SMALL, {}, {"tau": -math.inf}, {}),
    "small_no_avga": (SMALL, {}, {}, {"attention": PositionMean()}),
    "small_lr3e-4": (SMALL, {"lr": 3e-4}, {}, {}),
    "small_b16": (SMALL, {"batch_size": 16}, {}, {}),
    "small_dropout0": (SMALL, {"dropout": 0.0}, {}, {}),
}


def run(model: str, setting: str, variant: str, seed: int, epochs: int | None, sets: dict, classes: list[str]) -> dict:
    """Train one variant at one seed: per-epoch train/val/test accuracy, test accuracy at the best validation epoch."""
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.event.training import Trainer, defaults_for, predict_dataset
    from avepipe.run.seeding import seed_everything

    recipe, schedule, options, changes = VARIANTS[variant]
    seed_everything(seed)
    config = defaults_for(model, setting, recipe, options, seed=seed, epochs=epochs, **schedule)
    net = build_model(model, setting, num_classes=len(classes) - 1, **config.model_options)
    for name, value in changes.items():
        setattr(net, name, value)

    def test_accuracy(row: dict) -> None:
        predicted, _, truth = predict_dataset(net, sets["test"])
        row["test_acc"] = float((predicted == truth).mean())

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = Trainer(net, config, sets["train"], sets["val"], run_dir, classes, ExtractorConfig(), device="cpu",
                         progress=False, on_epoch=test_accuracy).fit()
    history = result.history
    third = history[max(1, math.ceil(config.epochs / 3)) - 1]
    return {"model": model, "setting": setting, "variant": variant, "seed": seed, "epochs": config.epochs,
            "batch_size": config.batch_size, "lr": config.lr, "model_options": {k: str(v) for k, v in
                                                                                 config.model_options.items()},
            "changes": {k: v if isinstance(v, float) else type(v).__name__ for k, v in changes.items()},
            "best_epoch": result.best_epoch, "best_val_acc": result.best_val_accuracy,
            "test_acc_at_best_val": history[result.best_epoch - 1]["test_acc"],
            "test_acc_last": history[-1]["test_acc"], "train_acc_third": third["train_acc"],
            "train_acc_last": history[-1]["train_acc"],
            "curve": [[round(r["train_acc"], 3), round(r["val_acc"], 3), round(r["test_acc"], 3)] for r in history],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    from avepipe.event import baselines
    from avepipe.data.annotations import load_annotations
    from avepipe.data.cache import CacheSet
    from avepipe.data.dataset import FeatureDataset
    from avepipe.data.splits import load_official_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache")
    parser.add_argument("annotations")
    parser.add_argument("splits", help="directory holding train/val/test_order.h5")
    parser.add_argument("--model", default="psp")
    parser.add_argument("--setting", default="fully")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (initialisation and shuffling)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+S-1")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the recipe's)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    annotations = load_annotations(args.annotations)
    caches = CacheSet([args.cache]).caches
    ids = load_official_splits(args.splits, annotations)
    sets = {name: FeatureDataset(caches, annotations, ids[name], in_memory=True) for name in ("train", "val", "test")}
    train_labels, test_labels = sets["train"].segment_labels, sets["test"].segment_labels
    probe = baselines.fit_linear_probe(*baselines.segment_features(sets["train"]), len(annotations.classes))
    beside = {"majority_test": baselines.majority_accuracy(train_labels, test_labels),
              "majority_train": baselines.majority_accuracy(train_labels, train_labels),
              "probe_test": probe.accuracy(*baselines.segment_features(sets["test"])),
              "videos": {name: len(dataset) for name, dataset in sets.items()}}
    where = machine()
    for variant in args.variants.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            line = run(args.model, args.setting, variant, seed, args.epochs, sets, annotations.classes)
            print(json.dumps({"benchmark": "psp_small_data", **line, **beside, "cache": args.cache,
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **where}), flush=True)


if __name__ == "__main__":
    main()
