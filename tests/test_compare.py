"""`avepipe compare`: validation-selected test figures over seeds, one table, resumable, spread over ranks."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner

from avepipe import compare as comparing
from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.splits import load_official_splits
from avepipe.event.evaluation import EvaluateOptions, evaluate_checkpoint
from avepipe.models import registry
from avepipe.event.api import TrainOptions, train_event_model
from tests._registry_helpers import FAMILY, write_labels
from tests._train_helpers import make_videos, write_cache


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    audio, visual, segments, _ = make_videos(50, seed=7)
    ids = [f"v{i:02d}" for i in range(50)]
    return write_cache(root / "features.h5", ids, audio, visual), write_labels(root / "labels.csv", ids, segments)


@pytest.fixture
def registered():
    registry.register(FAMILY)
    yield FAMILY
    registry.unregister(FAMILY.name)


def _options(data, output, **changes):
    cache, labels = data
    return comparing.CompareOptions(caches=(cache,), annotations=labels, output=output,
                                    **{"models": ("pooled-linear",), "seeds": (0, 1), "device": "cpu", **changes})


def test_table_is_the_mean_of_runs_each_selected_on_validation_and_scored_once_on_test(data, registered, tmp_path):
    cache, labels = data
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, ["compare", str(cache), "--annotations", str(labels), "-o", str(out),
                                       "--models", "pooled-linear,psp", "--seeds", "0,1", "--epochs", "3",
                                       "--test-selected", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [(r["model"], r["setting"], r["runs"]) for r in rows] == [("pooled-linear", "fully", "2"),
                                                                     ("psp", "fully", "2")]
    annotations = load_annotations(labels)
    splits = load_official_splits(out / "splits", annotations)
    assert not set(splits["test"]) & (set(splits["train"]) | set(splits["val"]))
    for row in rows:
        accuracies = []
        for seed in (0, 1):
            run = out / "runs" / f"{row['model']}-fully-seed{seed}"
            found = json.loads((run / "result.json").read_text())
            history = list(csv.DictReader(open(run / "metrics.csv")))
            best = max(range(3), key=lambda e: (float(history[e]["val_acc"]), -e))     # first best on validation
            assert found["best_epoch"] == best + 1
            assert found["test_selected_accuracy"] == pytest.approx(max(float(h["test_acc"]) for h in history))
            report = evaluate_checkpoint(EvaluateOptions(run / "best", (cache,), labels, split="test",
                                                         splits_dir=out / "splits"))
            assert found["test_accuracy"] == pytest.approx(report.segment_accuracy)
            accuracies.append(report.segment_accuracy)
        assert float(row["test_mean"]) == pytest.approx(np.mean(accuracies))
        assert float(row["test_std"]) == pytest.approx(np.std(accuracies, ddof=1))
        assert (float(row["test_min"]), float(row["test_max"])) == pytest.approx((min(accuracies), max(accuracies)))
    assert rows[1]["published"] == "77.8" and rows[0]["published"] == ""
    table = (out / "table.txt").read_text()
    assert "majority class:" in table and "linear probe:" in table and "* best test accuracy" in table
    assert all(line in result.output for line in table.splitlines())
    picture = np.asarray(Image.open(out / "table.png").convert("RGB")).astype(int)
    bar_blue = np.all(np.abs(picture - [75, 147, 199]) < 25, axis=-1)       # tab:blue at alpha 0.8 on white
    columns = np.flatnonzero(bar_blue.any(axis=0))
    assert bar_blue.mean() > 0.05 and np.diff(columns).max() > 10           # two bars, a gap between them


def test_a_killed_compare_resumes_exactly(data, registered, tmp_path):
    whole = comparing.compare(_options(data, tmp_path / "whole", schedule={"epochs": 4}), log=lambda m: None)[0]
    options = _options(data, tmp_path / "killed", schedule={"epochs": 4})
    splits = comparing.prepare_splits(options)
    run_dir = options.output / "runs" / "pooled-linear-fully-seed0"
    cache, labels = data
    train_event_model(TrainOptions(caches=(cache,), annotations=labels, run_dir=run_dir, model="pooled-linear",
                                   schedule={"epochs": 2, "seed": 0}, splits_dir=splits, device="cpu"),
                      log=lambda m: None)      # killed after epoch 2 of 4
    resumed = comparing.compare(options, log=lambda m: None)[0]
    assert len(list(csv.DictReader(open(run_dir / "metrics.csv")))) == 4
    assert resumed == whole


def test_each_rank_takes_its_share_of_the_runs(data, registered, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    messages = []
    options = _options(data, tmp_path / "ranked", seeds=(0, 1, 2), schedule={"epochs": 1})
    rows, _ = comparing.compare(options, log=messages.append)
    assert sorted(p.parent.name for p in (tmp_path / "ranked" / "runs").glob("*/result.json")) == [
        "pooled-linear-fully-seed1"]
    assert rows[0].runs == 1 and rows[0].expected == 3
    assert messages[-1].startswith("2 of 3 runs not finished yet")


def test_unknown_models_and_empty_grids_are_one_line(data, tmp_path):
    cache, labels = data
    runner = CliRunner()
    result = runner.invoke(main, ["compare", str(cache), "--annotations", str(labels), "-o", str(tmp_path / "x"),
                                  "--models", "psp,nope"])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error: unknown model 'nope'")
    result = runner.invoke(main, ["compare", str(cache), "--annotations", str(labels), "-o", str(tmp_path / "y"),
                                  "--models", "psp", "--settings", "semi"])
    assert result.exit_code == 2 and "nothing to compare" in result.output


def test_precision_reaches_every_run(data, tmp_path):
    cache, labels = data
    out = tmp_path / "bf16"
    result = CliRunner().invoke(main, ["compare", str(cache), "--annotations", str(labels), "-o", str(out),
                                       "--models", "psp", "--seeds", "0", "--epochs", "1", "--precision", "bf16",
                                       "--no-linear-probe", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "runs" / "psp-fully-seed0" / "last" / "config.json").read_text())
    assert stored["extra"]["train_config"]["precision"] == "bf16"
