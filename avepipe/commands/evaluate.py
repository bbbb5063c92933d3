"""``avepipe evaluate``: score an event checkpoint on a split of a cache."""
from __future__ import annotations

import json
from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.commands.options import ANNOTATIONS, SPLITS, device_option


@click.command(cls=Command)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_path", type=ANNOTATIONS, required=True,
              help="Labels (AVE Annotations.txt or CSV; 'ave': the official AVE file shipped with avepipe; "
                   "vggsound:META.csv,CATEGORIES.txt,LABELS_DIR: VGGSound-AVEL); read with the checkpoint's "
                   "class list.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
              help="Which split to score.")
@click.option("--splits", "splits_dir", type=SPLITS,
              help="Directory with train/val/test_order.h5 ('ave': the official AVE splits shipped with avepipe; "
                   "default: beside the annotations, then the run's splits/ next to CHECKPOINT).")
@click.option("--limit", type=int, help="Score only the first N videos of the split (smoke tests).")
@device_option
@click.option("--batch-size", type=int, default=64, show_default=True, help="Videos per forward pass.")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--linear-probe", is_flag=True,
              help="Also fit a linear classifier on segment-mean pool5 + VGGish (standardised) of the training "
                   "split and score it on the same split, as a reference.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object instead of a table.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              help="Also write metrics.json and confusion.png (row-normalised confusion matrix) here.")
def evaluate(checkpoint, caches, annotations_path, split, splits_dir, limit, device, batch_size, workers, linear_probe,
             as_json, out_dir):
    """Score the event CHECKPOINT on the features in CACHE(s) (sound source: `avepipe source evaluate`).

    Reports the paper's segment accuracy (all segments of the split, 29-way on AVE,
    background included), per-class accuracy, and event-interval precision/recall/F1
    (consecutive same-label event segments form an interval; a predicted interval
    counts when its label matches a true one and their temporal IoU >= 0.5, each
    true interval matched at most once). Beside the model: the accuracy of always
    answering the training split's most common class (and, with --linear-probe, of a
    linear classifier), so a model that learnt nothing shows. Refuses caches made by
    another extractor.
    """
    from avepipe.event.evaluation import EvaluateOptions, evaluate_checkpoint, write_evaluation

    report = evaluate_checkpoint(EvaluateOptions(checkpoint, tuple(caches), annotations_path, split, splits_dir, device,
                                                 batch_size, workers, limit, linear_probe))
    if out_dir:
        write_evaluation(out_dir, report)
    click.echo(json.dumps(report.to_json()) if as_json else report.table())
