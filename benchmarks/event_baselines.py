"""PSP beside the majority class and a linear probe on small generated data, under two schedules.

The issue's point: on a few dozen videos the published schedule (batch 128) makes a handful of
optimiser steps, and PSP's accuracy can sit at the "always background" level while a linear
classifier on the same features does far better. This measures, on generated features
(``tests.generators.synthetic_features``: an event only where the seen and heard classes agree, with
single-modality distractors), for each seed:

- ``psp_published``: the published hyper-parameters cut to ``--epochs`` (batch 128, lr 1e-3);
- ``psp_small``: the small-data recipe (batch 8, lr 1e-3, lr x0.3 after 60% of the epochs);
- ``majority``: always the training split's most common label;
- ``linear_probe``: avepipe.baselines' probe (segment-mean pool5 + VGGish, standardised),
  fitted on the training videos.

The PSP figures are test accuracy of the epoch with the best validation accuracy. Prints one
JSON line with the CPU model and flags.

    python benchmarks/event_baselines.py [--seeds 3] [--videos 60] [--epochs 40]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import machine  # noqa: E402

CLASSES = ["a", "b", "c", "d", "background"]


def psp_test_accuracy(train_set, val_set, test_set, seed: int, **schedule) -> float:
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.models.checkpoint import load_checkpoint
    from avepipe.training import Trainer, defaults_for, predict_dataset, seed_everything

    seed_everything(seed)
    config = defaults_for("psp", "fully", seed=seed, **schedule)
    net = build_model("psp", "fully", **config.model_options, num_classes=len(CLASSES) - 1)
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(net, config, train_set, val_set, run_dir, CLASSES, ExtractorConfig(), device="cpu",
                progress=False).fit()
        best, _ = load_checkpoint(Path(run_dir) / "best")
        predicted, _, truth = predict_dataset(best, test_set)
    return float((predicted == truth).mean())


def main() -> None:
    from avepipe import baselines
    from tests.generators.synthetic_features import Prototypes, TensorFeatures, make_videos

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--noise", type=float, default=1.0)
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = (int(0.6 * args.videos), int(0.2 * args.videos), args.videos - int(0.6 * args.videos) - int(0.2 * args.videos))
    rows = []
    for seed in range(args.seeds):
        protos = Prototypes(len(CLASSES) - 1, seed)
        train_set, val_set, test_set = (TensorFeatures(*make_videos(n, len(CLASSES) - 1, seed + k, protos=protos,
                                                                    noise=args.noise, distractors=0.8))
                                        for k, n in enumerate(sizes))
        truth = test_set.segment_labels.numpy()
        probe = baselines.fit_linear_probe(*baselines.segment_features(train_set), len(CLASSES))
        decay = (max(1, int(0.6 * args.epochs)),)
        rows.append({
            "seed": seed,
            "psp_published": psp_test_accuracy(train_set, val_set, test_set, seed, epochs=args.epochs),
            "psp_small": psp_test_accuracy(train_set, val_set, test_set, seed, epochs=args.epochs, batch_size=8,
                                           lr_milestones=decay, lr_gamma=0.3),
            "majority": baselines.majority_accuracy(train_set.segment_labels.numpy(), truth),
            "linear_probe": probe.accuracy(*baselines.segment_features(test_set)),
        })
    means = {k: round(statistics.mean(r[k] for r in rows), 4) for k in rows[0] if k != "seed"}
    print(json.dumps({"benchmark": "event_baselines", **machine(), "videos": sizes, "epochs": args.epochs,
                      "noise": args.noise, "published_steps": baselines.optimiser_steps(sizes[0], 128, args.epochs),
                      "small_steps": baselines.optimiser_steps(sizes[0], 8, args.epochs), "mean": means,
                      "per_seed": rows, "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
