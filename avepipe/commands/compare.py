"""``avepipe compare``: train several event models over several seeds on one cache and tabulate them."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.commands.base import Command
from avepipe.commands.options import ANNOTATIONS, SPLITS, TRAIN_PRECISION, device_option
from avepipe.models.registry import AUTHORS


def _names(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _seeds(ctx, param, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _names(ctx, param, value))
    except ValueError:
        raise click.BadParameter("expected comma-separated integers, e.g. 0,1,2") from None


@click.command(cls=Command)
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--annotations", "annotations_path", type=ANNOTATIONS, required=True,
              help="Labels, as for `avepipe train` ('ave' = the official AVE file shipped with avepipe).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder: splits/, runs/<model>-<setting>-seed<k>/, table.txt/.csv/.json/.png.")
@click.option("--models", default="psp,cpsp", show_default=True, callback=_names,
              help="Comma-separated registered models (see `avepipe train --help`).")
@click.option("--settings", default="fully", show_default=True, callback=_names,
              help="Comma-separated: fully, weakly. A model without a setting is left out of that setting.")
@click.option("--seeds", default="0,1,2", show_default=True, callback=_seeds,
              help="Seeds of initialisation and shuffling; every run uses the same split.")
@click.option("--recipe", default=AUTHORS, show_default=True, help="Training recipe of every model.")
@click.option("--epochs", type=int, help="Override every recipe's epochs (e.g. for a quick look).")
@click.option("--batch-size", type=int, help="Override every recipe's batch size.")
@click.option("--precision", type=TRAIN_PRECISION,
              help="Training arithmetic of every run, as for `avepipe train` (default fp32).")
@click.option("--splits", "splits_dir", type=SPLITS,
              help="train/val/test_order.h5 directory ('ave': official AVE splits); default: beside the "
                   "annotations, else a random split (seed 0) written to OUTPUT/splits.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True, help="Validation share of a random split.")
@click.option("--test-fraction", type=float, default=0.1, show_default=True, help="Test share of a random split.")
@click.option("--background-cache", "background_caches", multiple=True, type=click.Path(path_type=Path),
              help="Background-only videos added to training, as for `avepipe train`. Repeatable.")
@click.option("--no-linear-probe", is_flag=True, help="Leave the linear-probe baseline out of the table.")
@click.option("--test-selected", is_flag=True,
              help="Also score the test split every epoch and report the best (what most papers report; "
                   "optimistic, labelled as such, never used for selection).")
@device_option
def compare(caches, annotations_path, output, models, settings, seeds, recipe, epochs, batch_size, precision,
            splits_dir, val_fraction, test_fraction, background_caches, no_linear_probe, test_selected, device):
    """Train MODELS x SETTINGS x SEEDS on CACHE(s); one table of test accuracy.

    Each run selects its epoch on the validation split and is scored once on the test split;
    the table gives mean +- std and min-max over seeds beside the majority class and a linear
    probe. Interrupted? Run the same command again: finished runs are kept, an unfinished
    one resumes exactly. Under torchrun the runs are spread over the ranks (one per rank at
    a time; on GPUs one per GPU).
    """
    from avepipe.compare import CompareOptions, compare as run_compare, table_lines

    given = (("epochs", epochs), ("batch_size", batch_size), ("precision", precision))
    schedule = {k: v for k, v in given if v is not None}
    options = CompareOptions(
        caches=tuple(caches), annotations=annotations_path, output=output, models=models, settings=settings,
        seeds=seeds, recipe=recipe, schedule=schedule, splits_dir=splits_dir, val_fraction=val_fraction,
        test_fraction=test_fraction, background_caches=tuple(background_caches), device=device,
        linear_probe=not no_linear_probe, test_selected=test_selected)
    rows, reference = run_compare(options, log=lambda message: click.echo(message, err=True))
    click.echo("\n".join(table_lines(rows, reference)))
    click.echo(f"table: {output / 'table.txt'} (csv, json, png beside it)")
