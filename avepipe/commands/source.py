"""``avepipe source``: train and score the sound-source localiser (FNAC) on feature caches."""
from __future__ import annotations

import json
from pathlib import Path

import click

from avepipe.commands.base import Group
from avepipe.commands.options import device_option, seed_option


def _threshold(ctx, param, value: str) -> float | str:
    if value == "median":
        return value
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 < number < 1.0:
        raise click.BadParameter("expected a number between 0 and 1, or 'median'")
    return number


@click.group(cls=Group)
def source():
    """Where the sound comes from: the FNAC sound-source localiser.

    Self-supervised on the same feature caches as the event models (no labels);
    `avepipe localize --source-checkpoint` adds its answer to each event second.
    """


@source.command()
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory: best/ (the checkpoint kept), last/ (to resume), metrics.csv, curves.png.")
@click.option("--schedule", type=click.Choice(["small-data", "authors"]), default="small-data", show_default=True,
              help="small-data (measured on a few hundred videos, docs/baselines.md): --epochs 30, --batch-size 32, "
                   "--lr 1e-3, 1 contrastive-only epoch, no input dropout, softmax pooling of the maps, FNS and TNE "
                   "weights 100 x batch size / 128 (the authors' balance at their batch of 128; 25 at 32); authors "
                   "(their train.py): --epochs 20, --batch-size 128, --lr 1e-4, 3 contrastive-only epochs, input "
                   "dropout 0.9, max pooling. Both: Adam, weight decay 1e-4. --epochs/--batch-size/--lr override.")
@click.option("--epochs", type=int, help="Training epochs. [default: from --schedule]")
@click.option("--batch-size", type=int, help="(video, second) pairs per batch; the other pairs of the batch are "
                                              "the negatives. [default: from --schedule]")
@click.option("--lr", type=float, help="Adam learning rate. [default: from --schedule]")
@click.option("--tau", type=float, help="Temperature of the similarity logits (the authors': 0.03; 0.1 and 0.3 "
                                       "measured in docs/baselines.md). [default: 0.03]")
@click.option("--boxes", "boxes_path", type=click.Path(path_type=Path),
              help="boxes.json of the cache's videos; the epoch with the best validation peak-in-box is kept "
                   "(without it, the last epoch).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Validation share of the seeded split of the cached videos (stored in the checkpoint).")
@click.option("--test-fraction", type=float, default=0.1, show_default=True,
              help="Test share of the split, held out for `avepipe source evaluate`, never trained on.")
@seed_option("initialisation, shuffling and the split")
@device_option
@click.option("--no-fns", is_flag=True, help="Without false-negative suppression.")
@click.option("--no-tne", is_flag=True, help="Without true-negative enhancement (with --no-fns: the plain "
                                             "contrastive baseline).")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its last/ (exactly: weights, optimiser, "
                                             "random state); --epochs may extend it, other settings are the run's.")
def train(caches, run_dir, schedule, epochs, batch_size, lr, tau, boxes_path, val_fraction, test_fraction, seed, device,
          no_fns, no_tne, resume):
    """Train the sound-source localiser on feature CACHE(s) of one extractor, on the train part of a seeded split."""
    from avepipe.source.api import SourceTrainOptions, run_source_training

    if tau is not None and tau <= 0:
        raise click.BadParameter(f"must be positive, got {tau}", param_hint="'--tau'")
    options = SourceTrainOptions(tuple(caches), run_dir, boxes_path, schedule, epochs, batch_size, lr, tau, seed,
                                 not no_fns, not no_tne, val_fraction, test_fraction, device, resume)
    run_source_training(options, log=lambda m: click.echo(m, err=True))
    click.echo(f"sound-source checkpoint {run_dir / 'best'}; curves {run_dir / 'curves.png'}")


@source.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--boxes", "boxes_path", required=True, type=click.Path(path_type=Path),
              help="boxes.json of `avepipe synth` (frame size from the scenes.json beside it) or "
                   "{video: {frame_size: [w, h], boxes: {second: [x0, y0, x1, y1]}}}.")
@click.option("--threshold", default="0.5", show_default=True, callback=_threshold,
              help="Binarise the min-max normalised map at this value, or 'median' (the published code's top "
                   "half of the pixels, which caps IoU for small objects).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
              help="Which part of the run's split (stored in the checkpoint) to score.")
@click.option("--linear-probe", is_flag=True,
              help="Also fit a linear classifier on each position's pool5 vector, supervised by the training "
                   "boxes, and score it beside the model (a ceiling).")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object instead of a table.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), help="Also write metrics.json here.")
def evaluate(checkpoint, caches, boxes_path, threshold, split, linear_probe, device, as_json, out_dir):
    """Score a sound-source CHECKPOINT on every (video, second) of the split of CACHE(s) with a box and audio.

    Reports cIoU, AUC, mean IoU and peak-in-box, beside a random cell, the best fixed
    cell fitted on the training videos and (--linear-probe) a supervised linear probe.
    Refuses caches made by another extractor.
    """
    from avepipe.reports import write_metrics_json
    from avepipe.source.api import SourceEvaluateOptions, evaluate_source

    report = evaluate_source(SourceEvaluateOptions(checkpoint, tuple(caches), boxes_path, threshold=threshold,
                                                   split=split, linear_probe=linear_probe, device=device))
    if out_dir:
        write_metrics_json(out_dir, report)
    click.echo(json.dumps(report.to_json()) if as_json else report.table())
