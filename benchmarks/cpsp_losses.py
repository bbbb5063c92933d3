"""Do CPSP's contrastive terms help? PSP, CPSP as released, CPSP corrected and each PSA term alone.

For each seed, on the same generated data (``tests.generators.synthetic_features``: a segment is an
event only where the video's class is both seen and heard) and from the same initialisation
seed, this trains:

- ``psp``: fully supervised PSP (cross-entropy + 100 AVPS);
- ``cpsp_released``: CPSP with ``--cpsp-loss released`` (the authors' code: PSA_S constant);
- ``cpsp_corrected``: CPSP with ``--cpsp-loss corrected`` (intended PSA_S and PSA_V);
- ``corrected_no_psa``: the corrected CPSP without PSA_S and PSA_V (event + category + AVPS);
- ``corrected_psa_s``: that plus the corrected PSA_S only (weight 0.01);
- ``corrected_psa_v``: that plus the corrected PSA_V only (weight 1);
- ``released_loss_xavier_init`` / ``corrected_loss_default_init``: the released loss from the
  corrected (Xavier) initialisation and the other way round, which separate the effect of the
  loss from that of the initialisation;

and reports the segment accuracy after the LAST epoch on held-out generated videos (neither
trained on nor used to pick an epoch): per seed, mean +- sample std per variant, and the paired
differences that answer the question (corrected - released, each term - no PSA, CPSP - PSP).

The schedule is small (the published one is 45 epochs of 64 videos on 3,339 videos): six variants
x 5 seeds took 14.3 minutes on 2 cores shared with other jobs (load ~16). Each model keeps its
published optimiser, gradient clipping and decay factor, with --epochs, --batch-size and one lr
decay after --decay-after; --variants runs a subset (same data and initialisation per seed).

Prints one JSON line (with the CPU model and flags).

    nice -n 10 python benchmarks/cpsp_losses.py [--seeds 5] [--videos 32] [--test-videos 32] [--epochs 3] [--threads 1]
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
DISTRACTORS = 0.4          # the learning tests' share of single-modality background segments
# variant: (model, cpsp_loss trained with, cpsp_loss whose initialisation is used, psa_segment_weight,
# psa_video_weight); None = the model's own
VARIANTS = {
    "psp": ("psp", None, None, None, None),
    "cpsp_released": ("cpsp", "released", "released", None, None),
    "cpsp_corrected": ("cpsp", "corrected", "corrected", None, None),
    "corrected_no_psa": ("cpsp", "corrected", "corrected", 0.0, 0.0),
    "corrected_psa_s": ("cpsp", "corrected", "corrected", None, 0.0),
    "corrected_psa_v": ("cpsp", "corrected", "corrected", 0.0, None),
    "released_loss_xavier_init": ("cpsp", "released", "corrected", None, None),
    "corrected_loss_default_init": ("cpsp", "corrected", "released", None, None),
}
PAIRS = [("cpsp_corrected", "cpsp_released"), ("corrected_psa_s", "corrected_no_psa"),
         ("corrected_psa_v", "corrected_no_psa"), ("cpsp_corrected", "corrected_no_psa"),
         ("cpsp_released", "psp"), ("cpsp_corrected", "psp"),
         ("released_loss_xavier_init", "cpsp_released"), ("cpsp_corrected", "released_loss_xavier_init"),
         ("corrected_loss_default_init", "cpsp_released"), ("cpsp_corrected", "corrected_loss_default_init")]


def train_and_test(variant: str, train_set, val_set, test_set, seed: int, args) -> float:
    """Held-out segment accuracy after the last epoch of one run."""
    from avepipe.extract.provenance import ExtractorConfig
    from avepipe.models import build_model
    from avepipe.training import Trainer, defaults_for, predict_dataset, seed_everything

    model, cpsp_loss, init, psa_s, psa_v = VARIANTS[variant]
    config = defaults_for(model, "fully", epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                          lr_milestones=(args.decay_after,), model_options={"cpsp_loss": cpsp_loss})
    seed_everything(seed)
    net = build_model(model, "fully", num_classes=len(CLASSES) - 1, cpsp_loss=init)
    if cpsp_loss is not None:
        net.loss = cpsp_loss                     # the initialisation of ``init``, trained with ``cpsp_loss``
    if psa_s is not None:
        net.psa_segment_weight = psa_s
    if psa_v is not None:
        net.psa_video_weight = psa_v
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(net, config, train_set, val_set, run_dir, CLASSES, ExtractorConfig(), device="cpu",
                progress=False).fit()
    predicted, _, truth = predict_dataset(net, test_set, batch_size=64)
    return float((predicted == truth).mean())


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(accuracy: dict[str, list[float]]) -> dict:
    report = {name: {"per_seed": [round(v, 4) for v in values], "mean": round(statistics.mean(values), 4),
                     "std": round(_spread(values), 4)} for name, values in accuracy.items()}
    report["paired_differences"] = {}
    for a, b in (pair for pair in PAIRS if set(pair) <= set(accuracy)):
        diff = [x - y for x, y in zip(accuracy[a], accuracy[b])]
        report["paired_differences"][f"{a} - {b}"] = {
            "mean": round(statistics.mean(diff), 4), "std": round(_spread(diff), 4),
            "wins": sum(d > 0 for d in diff), "ties": sum(d == 0 for d in diff), "losses": sum(d < 0 for d in diff)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 (data and initialisation)")
    parser.add_argument("--videos", type=int, default=32, help="training videos per seed")
    parser.add_argument("--val-videos", type=int, default=8, help="validation videos (logged by the trainer only)")
    parser.add_argument("--test-videos", type=int, default=32, help="held-out videos the accuracy is measured on")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--decay-after", type=int, default=2, help="one lr decay (the model's factor) after this epoch")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least overhead on a shared machine)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    from tests.generators.synthetic_features import Prototypes, TensorFeatures, make_videos

    started = time.perf_counter()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown} (choose from {', '.join(VARIANTS)})")
    accuracy: dict[str, list[float]] = {name: [] for name in variants}
    floor = []
    bar = tqdm(total=args.seeds * len(variants), desc="cpsp loss runs", unit="run")
    for seed in range(args.seeds):
        protos = Prototypes(len(CLASSES) - 1, seed)
        train_set, val_set, test_set = (
            TensorFeatures(*make_videos(n, len(CLASSES) - 1, seed * 10 + k, protos=protos, distractors=DISTRACTORS))
            for k, n in ((1, args.videos), (2, args.val_videos), (3, args.test_videos)))
        floor.append(float((test_set.segment_labels == len(CLASSES) - 1).float().mean()))
        for name in variants:
            accuracy[name].append(train_and_test(name, train_set, val_set, test_set, seed, args))
            bar.update()
    bar.close()

    report = {"benchmark": "cpsp_losses", "setting": "fully", "metric": "held-out segment accuracy after the last epoch",
              "seeds": args.seeds, "train_videos": args.videos, "val_videos": args.val_videos,
              "test_videos": args.test_videos, "classes": len(CLASSES) - 1, "epochs": args.epochs,
              "batch_size": args.batch_size, "decay_after": args.decay_after, "distractors": DISTRACTORS,
              "background_everywhere": [round(v, 4) for v in floor], "threads": torch.get_num_threads(),
              **summarise(accuracy), **machine(), "wall_s": round(time.perf_counter() - started, 1)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
