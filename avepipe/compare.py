"""``avepipe compare``: several event models, several seeds, one split, one honest table.

Every run trains on the same training split, selects its epoch on the validation split only
and is scored once on the test split. The grid is a list of runs in a fixed order, each in
its own run directory; a run that finished has a ``result.json``, one that was interrupted
is resumed exactly (the trainer's ``last/``), so a killed ``compare`` continues where it
stopped. Under torchrun, rank r takes runs r, r + N, ... (one whole run per rank at a time:
small models train faster one per GPU than split over several).

The test-selected figure that most papers of the field report (the best test accuracy over
all epochs) is available on request; it is kept apart and labelled, never mixed with the
validation-selected one.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avepipe import distributed
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import CacheSet
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits, resolve_splits, write_splits
from avepipe.errors import UserError
from avepipe.evaluation import evaluate_checkpoint, training_split_baselines
from avepipe.models import registry
from avepipe.models.registry import AUTHORS
from avepipe.runs import TrainOptions, train_event_model

RESULT_FILE = "result.json"
SPLIT_SEED = 0          # one split for every run: seeds vary initialisation and shuffling, not the data


@dataclass(frozen=True)
class CompareOptions:
    """The grid (models x settings x seeds) and what every run shares."""

    caches: tuple[Path, ...]
    annotations: Path
    output: Path
    models: tuple[str, ...] = ("psp", "cpsp")
    settings: tuple[str, ...] = ("fully",)
    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: str = AUTHORS
    schedule: dict = field(default_factory=dict)
    splits_dir: Path | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    background_caches: tuple[Path, ...] = ()
    device: str | None = None
    linear_probe: bool = True
    test_selected: bool = False


@dataclass(frozen=True)
class Run:
    model: str
    setting: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.setting}-seed{self.seed}"


def grid(options: CompareOptions) -> list[Run]:
    """Every run, in a fixed order; refuses a model/setting the registry does not have."""
    runs = []
    for model, setting in itertools.product(options.models, options.settings):
        try:
            family = registry.get(model)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if setting not in family.settings:
            continue     # e.g. a fully supervised-only model in a weakly supervised comparison: reported as absent
        runs += [Run(model, setting, seed) for seed in options.seeds]
    if not runs:
        raise UserError("nothing to compare: no model has any of the settings asked for")
    return runs


def prepare_splits(options: CompareOptions) -> Path:
    """The one split every run uses, written to ``OUTPUT/splits`` (official files, else seeded random)."""
    directory = options.output / "splits"
    annotations = load_annotations(options.annotations)
    available = {vid for cache in CacheSet(options.caches).caches for vid in cache.ids}
    splits, origin = resolve_splits(annotations, options.annotations, options.splits_dir, available,
                                    options.val_fraction, options.test_fraction, SPLIT_SEED)
    if not splits.get("test"):
        raise UserError(f"{options.annotations}: empty test split ({origin})")
    directory.mkdir(parents=True, exist_ok=True)
    write_splits(directory, annotations, splits)
    return directory


def run_one(run: Run, options: CompareOptions, splits_dir: Path, device: str | None,
            log: Callable[[str], None]) -> dict:
    """Train (or resume, or skip when done) one run and score its validation-selected checkpoint on test."""
    run_dir = options.output / "runs" / run.name
    done = run_dir / RESULT_FILE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    train = TrainOptions(caches=options.caches, annotations=options.annotations, run_dir=run_dir,
                         model=run.model, setting=run.setting, recipe=options.recipe,
                         schedule={**options.schedule, "seed": run.seed}, splits_dir=splits_dir,
                         background_caches=options.background_caches, device=device,
                         resume=(run_dir / "last").exists(), monitor_test=options.test_selected)
    trained = train_event_model(train, log=lambda message: log(f"[{run.name}] {message}"), ranks=distributed.Ranks())
    report = evaluate_checkpoint(run_dir / "best", options.caches, options.annotations, split="test",
                                 splits_dir=splits_dir, device=device)
    result = {**asdict(run), "best_epoch": trained.best_epoch, "val_accuracy": trained.best_val_accuracy,
              "test_accuracy": report.segment_accuracy, "epochs": len(trained.history)}
    if options.test_selected:
        result["test_selected_accuracy"] = max(row["test_acc"] for row in trained.history)
    done.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def baselines(options: CompareOptions, splits_dir: Path) -> dict[str, float]:
    """Majority class and linear probe, fitted on the training split and scored on the test split."""
    path = options.output / "baselines.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    annotations = load_annotations(options.annotations)
    caches = CacheSet(options.caches).caches
    splits = load_official_splits(splits_dir, annotations)
    found = training_split_baselines(FeatureDataset(caches, annotations, splits["train"]),
                                     FeatureDataset(caches, annotations, splits["test"]), annotations.classes,
                                     options.linear_probe)
    figures = {name: values["segment_accuracy"] for name, values in found.items()}
    path.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return figures


@dataclass(frozen=True)
class Row:
    """One model and setting over its seeds (accuracies as fractions)."""

    model: str
    setting: str
    runs: int
    expected: int
    test_mean: float
    test_std: float
    test_min: float
    test_max: float
    val_mean: float
    test_selected_mean: float | None
    published: float | None     # the paper's figure on real AVE features (%), for orientation only


def summarise(results: Sequence[dict], runs: Sequence[Run]) -> list[Row]:
    """Mean, sample standard deviation (ddof=1; 0 for one run), min and max per model and setting."""
    rows = []
    for model, setting in dict.fromkeys((run.model, run.setting) for run in runs):
        mine = [r for r in results if (r["model"], r["setting"]) == (model, setting)]
        expected = sum(1 for run in runs if (run.model, run.setting) == (model, setting))
        if not mine:
            continue
        test = np.array([r["test_accuracy"] for r in mine])
        selected = [r["test_selected_accuracy"] for r in mine if "test_selected_accuracy" in r]
        rows.append(Row(model, setting, len(mine), expected, float(test.mean()),
                        float(test.std(ddof=1)) if len(test) > 1 else 0.0, float(test.min()), float(test.max()),
                        float(np.mean([r["val_accuracy"] for r in mine])),
                        float(np.mean(selected)) if selected else None,
                        registry.get(model).published.get(setting)))
    return rows


def table_lines(rows: Sequence[Row], reference: dict[str, float]) -> list[str]:
    """The table as text: validation-selected test accuracy, then the labelled extras."""
    selected = any(row.test_selected_mean is not None for row in rows)
    width = max([len("model")] + [len(row.model) for row in rows]) + 2
    head = f"{'model':<{width}}{'setting':<8}{'runs':>6}  {'test (val-selected)':>22}  {'min-max':>13}"
    head += f"  {'test-selected*':>14}" if selected else ""
    lines = [head + f"  {'published':>9}"]
    for row in rows:
        line = (f"{row.model:<{width}}{row.setting:<8}{f'{row.runs}/{row.expected}':>6}  "
                f"{100 * row.test_mean:>12.2f} +- {100 * row.test_std:5.2f}  "
                f"{100 * row.test_min:>6.2f}-{100 * row.test_max:<6.2f}")
        if selected:
            line += f"  {'' if row.test_selected_mean is None else f'{100 * row.test_selected_mean:.2f}':>14}"
        lines.append(line + f"  {'' if row.published is None else f'{row.published:.1f}':>9}")
    names = {"majority_class": "majority class", "linear_probe": "linear probe"}
    lines += [f"{names.get(name, name)}: {100 * value:.2f}" for name, value in reference.items()]
    if selected:
        lines.append("* best test accuracy over all epochs, as most papers report it: optimistic, not a held-out figure")
    lines.append("published: the paper's AVE figure on real VGG-19/VGGish features (other data than these)")
    return lines


def write_table(output: Path, rows: Sequence[Row], reference: dict[str, float], results: Sequence[dict]) -> None:
    """``table.txt``, ``table.csv``, ``table.json`` and ``table.png`` in ``output``."""
    (output / "table.txt").write_text("\n".join(table_lines(rows, reference)) + "\n", encoding="utf-8")
    with open(output / "table.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    (output / "table.json").write_text(json.dumps({"rows": [asdict(row) for row in rows], "baselines": reference},
                                                  indent=1) + "\n", encoding="utf-8")
    plot_table(output / "table.png", rows, reference, results)


def plot_table(path: Path, rows: Sequence[Row], reference: dict[str, float], results: Sequence[dict]) -> None:
    """Bars at the mean test accuracy, whiskers from min to max, the seeds as dots; baselines as lines."""
    from matplotlib.figure import Figure     # plotting only: keeps matplotlib out of every other import

    fig = Figure(figsize=(max(5.0, 1.1 * len(rows) + 2) + 1.8, 4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    colours = {"fully": "tab:blue", "weakly": "tab:orange"}
    means = [100 * row.test_mean for row in rows]
    ax.bar(x, means, color=[colours.get(row.setting, "tab:gray") for row in rows], alpha=0.8)
    ax.errorbar(x, means, yerr=[[m - 100 * r.test_min for m, r in zip(means, rows)],
                                [100 * r.test_max - m for m, r in zip(means, rows)]],
                fmt="none", ecolor="black", capsize=4)
    for i, row in enumerate(rows):
        seeds = [100 * r["test_accuracy"] for r in results if (r["model"], r["setting"]) == (row.model, row.setting)]
        ax.plot([i] * len(seeds), seeds, "o", color="black", markersize=3, label="one seed" if i == 0 else None)
    for name, value, style in zip(reference, reference.values(), ("--", ":")):
        ax.axhline(100 * value, color="dimgray", linestyle=style, label=name.replace("_", " "))
    ax.set_xticks(x, [f"{row.model}\n{row.setting}" for row in rows])
    ax.set(ylabel="test segment accuracy (%)", ylim=(0, 104))
    ax.set_title("test accuracy, epoch chosen on validation\n(bar: mean over seeds, whiskers: min-max)",
                 fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def compare(options: CompareOptions, log: Callable[[str], None]) -> tuple[list[Row], dict[str, float]]:
    """Run this process's share of the grid (all of it outside torchrun), then write the table of what is done."""
    ranks = distributed.env_ranks()
    runs = grid(options)
    options.output.mkdir(parents=True, exist_ok=True)
    splits_dir = prepare_splits(options)
    device = distributed.local_device(options.device, ranks) if ranks.distributed else options.device
    mine = runs[ranks.rank::ranks.world_size]
    started = time.monotonic()
    for done, run in enumerate(mine):
        log(f"run {done + 1}/{len(mine)}{_eta(started, done, len(mine))}: {run.name}")
        run_one(run, options, splits_dir, None if device is None else str(device), log)
    results = [json.loads(path.read_text(encoding="utf-8")) for run in runs
               if (path := options.output / "runs" / run.name / RESULT_FILE).is_file()]
    rows, reference = summarise(results, runs), baselines(options, splits_dir)
    write_table(options.output, rows, reference, results)
    missing = len(runs) - len(results)
    if missing:
        log(f"{missing} of {len(runs)} runs not finished yet (other ranks, or interrupted): run compare again "
            "with the same options to finish them; the table covers the finished ones")
    return rows, reference


def _eta(started: float, done: int, total: int) -> str:
    if not done:
        return ""
    per_run = (time.monotonic() - started) / done
    return f" ({per_run / 60:.1f} min per run, about {math.ceil(per_run * (total - done) / 60)} min left)"
