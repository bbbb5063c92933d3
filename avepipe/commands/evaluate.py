"""``avepipe evaluate``: score a checkpoint on a split of a cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from avepipe.commands.task_options import all_options_but, refuse_options_outside
from avepipe.commands.options import ANNOTATIONS, SPLITS
from avepipe.errors import UserError

_SOURCE_OPTIONS = ("boxes_path", "threshold")
_SHARED_OPTIONS = ("task", "checkpoint", "caches", "device", "as_json", "out_dir", "split", "linear_probe")


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
    """The sound-source figures of the model and its baselines as aligned text."""
    rows = [("model", report), *((_BASELINE_NAMES[k], v) for k, v in report.get("baselines", {}).items())]
    lines = [f"{'':<34}{'cIoU':>7}{'AUC':>7}{'mIoU':>7}{'peak-in-box':>13}"]
    lines += [f"{name:<34}{r['ciou']:>7.3f}{r['auc']:>7.3f}{r['mean_iou']:>7.3f}{r['peak_in_box']:>13.3f}"
              for name, r in rows]
    lines += ["cIoU: fraction of seconds with IoU >= 0.5; AUC: success rate over IoU 0..1; "
              "peak-in-box: the map's strongest cell lies in the box",
              f"{report['samples']} seconds of {report['videos']} videos ({report.get('split', 'given videos')}), "
              f"map binarised at {report['threshold']}; baselines fitted on the training videos"]
    return "\n".join(lines)


_BASELINE_NAMES = {"random_cell": "random cell", "fixed_cell": "best fixed cell (training videos)",
                   "linear_probe": "linear probe on pool5 (supervised)"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
@click.option("--task", type=click.Choice(["event", "source"]), default="event", show_default=True,
              help="event: a PSP/CPSP checkpoint against --annotations. source: a sound-source checkpoint "
                   "against --boxes (cIoU, AUC, mean IoU, peak-in-box).")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_path", type=ANNOTATIONS,
              help="--task event (required): labels (AVE Annotations.txt or CSV; 'ave': the official AVE file shipped with avepipe); read with the checkpoint's "
                   "class list.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True,
              help="Which split to score (--task source: of the run's split stored in the checkpoint).")
@click.option("--splits", "splits_dir", type=SPLITS,
              help="Directory with train/val/test_order.h5 ('ave': the official AVE splits shipped with avepipe; default: beside the annotations, then the "
                   "run's splits/ next to CHECKPOINT).")
@click.option("--limit", type=int, help="Score only the first N videos of the split (smoke tests).")
@click.option("--device", help="torch device. [default: cuda if available, else cpu]")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Videos per forward pass.")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--boxes", "boxes_path", type=click.Path(path_type=Path),
              help="--task source (required): boxes.json of `avepipe synth` (frame size from the scenes.json "
                   "beside it) or {video: {frame_size: [w, h], boxes: {second: [x0, y0, x1, y1]}}}.")
@click.option("--threshold", default="0.5", show_default=True, callback=_threshold,
              help="--task source: binarise the min-max normalised map at this value, or 'median' (the "
                   "published code's top half of the pixels, which caps IoU for small objects).")
@click.option("--linear-probe", is_flag=True,
              help="Also fit a linear classifier on the training split and score it on the same split, as a "
                   "reference: --task event on segment-mean pool5 + VGGish (standardised); --task source on each "
                   "position's pool5 vector, supervised by the training boxes (a ceiling).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object instead of a table.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              help="Also write metrics.json and confusion.png (row-normalised confusion matrix) here.")
def evaluate(ctx, task, checkpoint, caches, annotations_path, boxes_path, threshold, split, splits_dir, limit, device,
             batch_size, workers, linear_probe, as_json, out_dir):
    """Score CHECKPOINT on the features in CACHE(s).

    Reports the paper's segment accuracy (all segments of the split, 29-way on AVE,
    background included), per-class accuracy, and event-interval precision/recall/F1
    (consecutive same-label event segments form an interval; a predicted interval
    counts when its label matches a true one and their temporal IoU >= 0.5, each
    true interval matched at most once). Beside the model: the accuracy of always
    answering the training split's most common class (and, with --linear-probe, of a
    linear classifier), so a model that learnt nothing shows. Refuses caches made by
    another extractor.

    --task source scores a sound-source checkpoint on every (video, second) of the
    split with a box and audio, beside a random cell, the best fixed cell fitted on
    the training videos and (--linear-probe) a supervised linear probe.
    """
    from avepipe.models.checkpoint import check_task, read_checkpoint_info

    try:
        if task == "source":
            refuse_options_outside(ctx, _SHARED_OPTIONS + _SOURCE_OPTIONS, task)
        else:
            refuse_options_outside(ctx, all_options_but(ctx, _SOURCE_OPTIONS), task)
        check_task(read_checkpoint_info(checkpoint), task, checkpoint)
        if task == "source":
            return _evaluate_source(checkpoint, caches, boxes_path, threshold, device, as_json, out_dir, split,
                                    linear_probe)
        if annotations_path is None:
            raise UserError("--annotations is required for --task event")
        from avepipe.evaluation import evaluate_checkpoint, plot_confusion

        report = evaluate_checkpoint(checkpoint, caches, annotations_path, split, splits_dir, device, batch_size,
                                     workers, limit, linear_probe)
    except UserError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
        plot_confusion(out_dir / "confusion.png", report)
    click.echo(json.dumps(report.to_json()) if as_json else report.table())


def _evaluate_source(checkpoint: Path, caches, boxes_path: Path | None, threshold, device, as_json: bool,
                     out_dir: Path | None, split: str, linear_probe: bool) -> None:
    from avepipe.source_api import evaluate_source

    if boxes_path is None:
        raise UserError("--boxes is required for --task source")
    report = evaluate_source(checkpoint, caches, boxes_path, threshold=threshold, device=device, split=split,
                             linear_probe=linear_probe)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(json.dumps(report) if as_json else source_table(report))
