"""``avepipe source``: train and score the sound-source localiser (FNAC) on feature caches."""
from __future__ import annotations

import json
from pathlib import Path

import click

from avepipe.commands.base import Group


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


def source_table(report: dict) -> str:
    """The sound-source figures as aligned text."""
    return "\n".join([
        f"cIoU (fraction of seconds with IoU >= 0.5)  {report['ciou']:.4f}",
        f"AUC (success rate over IoU 0..1)            {report['auc']:.4f}",
        f"mean IoU                                    {report['mean_iou']:.4f}",
        f"peak in box                                 {report['peak_in_box']:.4f}",
        f"{report['samples']} seconds of {report['videos']} videos, map binarised at {report['threshold']}",
    ])


@click.group(cls=Group)
def source():
    """Where the sound comes from: the FNAC sound-source localiser.

    Self-supervised on the same feature caches as the event models (no labels);
    `avepipe localize --source-checkpoint` adds its answer to each event second.
    """


@source.command()
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory: checkpoint/, metrics.csv, loss.png.")
@click.option("--epochs", type=int, help="Training epochs. [default: 20, the authors']")
@click.option("--batch-size", type=int, help="(video, second) pairs per batch; the other pairs of the batch are "
                                              "the negatives. [default: 128]")
@click.option("--lr", type=float, help="Adam learning rate (weight decay 1e-4; the first 3 epochs train the "
                                       "contrastive term only). [default: 1e-4]")
@click.option("--seed", type=int, help="Seed of initialisation and shuffling. [default: 0]")
@click.option("--device", help="torch device. [default: cuda if available, else cpu]")
@click.option("--no-fns", is_flag=True, help="Without false-negative suppression.")
@click.option("--no-tne", is_flag=True, help="Without true-negative enhancement (with --no-fns: the plain "
                                             "contrastive baseline).")
def train(caches, run_dir, epochs, batch_size, lr, seed, device, no_fns, no_tne):
    """Train the sound-source localiser on feature CACHE(s) of one extractor."""
    from avepipe.source.api import run_source_training

    given = {k: v for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed).items() if v is not None}
    checkpoint = run_source_training(caches, run_dir, device=device, use_fns=not no_fns, use_tne=not no_tne, **given)
    click.echo(f"sound-source checkpoint {checkpoint}; loss curves {run_dir / 'loss.png'}")


@source.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--boxes", "boxes_path", required=True, type=click.Path(path_type=Path),
              help="boxes.json of `avepipe synth` (frame size from the scenes.json beside it) or "
                   "{video: {frame_size: [w, h], boxes: {second: [x0, y0, x1, y1]}}}.")
@click.option("--threshold", default="0.5", show_default=True, callback=_threshold,
              help="Binarise the min-max normalised map at this value, or 'median' (the published code's top "
                   "half of the pixels, which caps IoU for small objects).")
@click.option("--device", help="torch device. [default: cuda if available, else cpu]")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object instead of a table.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), help="Also write metrics.json here.")
def evaluate(checkpoint, caches, boxes_path, threshold, device, as_json, out_dir):
    """Score a sound-source CHECKPOINT on every (video, second) of CACHE(s) with a box and audio.

    Reports cIoU, AUC, mean IoU and peak-in-box. Refuses caches made by another extractor.
    """
    from avepipe.source.api import evaluate_source

    report = evaluate_source(checkpoint, caches, boxes_path, threshold=threshold, device=device)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(json.dumps(report) if as_json else source_table(report))
