"""`avepipe train` then `avepipe evaluate` on a cache laid out like AVE: real labels, synthetic features."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from avepipe.cli import main
from avepipe.data.annotations import load_ave_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.splits import load_official_splits
from avepipe.extract.provenance import ExtractorConfig

from tests._train_helpers import T, write_cache
from tests._paths import AVE_DIR

AVE = AVE_DIR
LIMIT = 4    # videos per split: enough to exercise every output, cheap on CPU


def _ave_like_features(annotations, keys, seed=0):
    """Tiny per-class patterns at the real event seconds, plus noise: learnable, labels real."""
    rng = np.random.default_rng(seed)
    k = len(annotations.classes)
    audio_proto = rng.normal(0, 1, (k, 128)).astype(np.float32)
    visual_proto = np.abs(rng.normal(0, 1, (k, 512))).astype(np.float32)
    audio = rng.normal(0, 0.3, (len(keys), T, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, 0.3, (len(keys), T, 7, 7, 512))).astype(np.float32)
    for i, key in enumerate(keys):
        labels = annotations.segment_labels(key, T)
        audio[i] += audio_proto[labels]
        visual[i] += visual_proto[labels][:, None, None, :]
    return audio, visual


@pytest.fixture(scope="module")
def ave_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ave")
    annotations = load_ave_annotations(AVE / "Annotations.txt")
    splits = load_official_splits(AVE, annotations)
    keys = [k for s in ("train", "val", "test") for k in splits[s][:LIMIT]]
    ids = [annotations.source_id(k) for k in keys]
    audio, visual = _ave_like_features(annotations, keys)
    unique = dict(zip(ids, range(len(ids))))
    cache = write_cache(root / "ave.h5", list(unique), audio[list(unique.values())], visual[list(unique.values())],
                        dtype="float16")
    run = root / "run"
    result = CliRunner().invoke(main, [
        "train", str(cache), "--annotations", str(AVE / "Annotations.txt"), "--splits", str(AVE),
        "--setting", "fully", "--model", "psp", "-o", str(run), "--epochs", "2", "--batch-size", "2",
        "--limit", str(LIMIT), "--seed", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root, cache, run, result


def test_train_writes_checkpoints_metrics_and_plot(ave_run):
    _, _, run, result = ave_run
    for name in ("best", "last"):
        config = json.loads((run / name / "config.json").read_text())
        assert config["class_names"][-1] == "background" and len(config["class_names"]) == 29
        assert config["extractor"]["segments"] == T
        assert (run / name / "model.safetensors").stat().st_size > 1_000_000
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for column in ("epoch", "lr", "train_loss", "train_ce", "train_avps", "train_acc", "val_acc", "time_s"):
        assert column in header
    assert len(rows) == 3
    pixels = np.asarray(Image.open(run / "curves.png").convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 200 and pixels.std() > 10          # not blank
    assert "official splits" in result.output


def test_evaluate_json_table_and_confusion_plot(ave_run, tmp_path):
    _, cache, run, _ = ave_run
    args = ["evaluate", str(run / "best"), str(cache), "--annotations", str(AVE / "Annotations.txt"),
            "--splits", str(AVE), "--split", "test", "--limit", str(LIMIT), "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--json", "-o", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["videos"] == LIMIT and report["segments"] == LIMIT * T
    assert 0.0 <= report["segment_accuracy"] <= 1.0
    counts = np.asarray(report["confusion_matrix"]["counts"])
    assert counts.shape == (29, 29) and counts.sum() == LIMIT * T
    assert report["segment_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    assert set(report["intervals"]) >= {"precision", "recall", "f1"}
    assert Image.open(tmp_path / "eval" / "confusion.png").size[0] > 300
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "segment accuracy (paper metric, 29-way)" in table.output


def test_evaluate_refuses_other_extractor(ave_run, tmp_path):
    root, cache, run, _ = ave_run
    other = write_cache(tmp_path / "other.h5", ["x"], np.zeros((1, T, 128)), np.zeros((1, T, 7, 7, 512)),
                        config=replace(ExtractorConfig(segments=T), fps=8))
    result = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(other), "--annotations",
                                       str(AVE / "Annotations.txt"), "--splits", str(AVE)])
    assert result.exit_code == 2
    assert "different extractor" in result.output and "checkpoint vs cache: fps: 16 vs 8" in result.output


def test_train_refuses_mixed_extractors_and_resume_on_other_cache(ave_run, tmp_path):
    root, cache, run, _ = ave_run
    other = write_cache(tmp_path / "other.h5", ["x"], np.zeros((1, T, 128)), np.zeros((1, T, 7, 7, 512)),
                        config=replace(ExtractorConfig(segments=T), visual_weights="random:7"))
    common = ["--annotations", str(AVE / "Annotations.txt"), "--splits", str(AVE), "--epochs", "3"]
    mixed = CliRunner().invoke(main, ["train", str(cache), str(other), "-o", str(tmp_path / "r"), *common])
    assert mixed.exit_code == 2
    assert "different extractor" in mixed.output and "visual_weights: 'random:7' vs 'random:0'" in mixed.output
    resumed = CliRunner().invoke(main, ["train", str(other), "-o", str(run), "--resume", *common])
    assert resumed.exit_code == 2
    assert f"different extractor than the run in {run} (run vs cache: visual_weights: " in resumed.output
    again = CliRunner().invoke(main, ["train", str(cache), "-o", str(run), *common])
    assert again.exit_code == 2 and "--resume" in again.output


def test_resume_refuses_changed_hyperparameters_and_extends_epochs(ave_run):
    _, cache, run, _ = ave_run
    common = ["train", str(cache), "--annotations", str(AVE / "Annotations.txt"), "--splits", str(AVE),
              "-o", str(run), "--resume", "--limit", str(LIMIT), "--device", "cpu"]
    changed = CliRunner().invoke(main, [*common, "--lr", "0.5"])
    assert changed.exit_code == 2
    assert "--resume keeps the run's hyper-parameters; differing: lr: run 0.001 vs given 0.5" in changed.output
    other_arithmetic = CliRunner().invoke(main, [*common, "--precision", "bf16"])
    assert other_arithmetic.exit_code == 2
    assert "differing: precision: run 'fp32' vs given 'bf16'" in other_arithmetic.output
    extended = CliRunner().invoke(main, [*common, "--epochs", "3"])
    assert extended.exit_code == 0, extended.output
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert json.loads((run / "last" / "config.json").read_text())["extra"]["epoch"] == 3


def _count_cache_opens(monkeypatch) -> Counter:
    """Every ``FeatureCache`` construction (the index read, ~0.34 s at 100k videos), by path."""
    opens: Counter = Counter()
    construct = FeatureCache.__init__

    def counted(self, path):
        opens[Path(path)] += 1
        construct(self, path)

    monkeypatch.setattr(FeatureCache, "__init__", counted)
    return opens


def test_train_and_evaluate_open_each_cache_once(ave_run, tmp_path, monkeypatch):
    """The training and validation sets (evaluate: the split and the baselines' training set) share the caches
    the command opened, background cache included, instead of each opening them again."""
    _, cache, run, _ = ave_run
    noisy = write_cache(tmp_path / "noisy.h5", ["noisy0", "noisy1"], np.zeros((2, T, 128)),
                        np.zeros((2, T, 7, 7, 512)))
    opens = _count_cache_opens(monkeypatch)
    trained = CliRunner().invoke(main, [
        "train", str(cache), "--background-cache", str(noisy), "--annotations", str(AVE / "Annotations.txt"),
        "--splits", str(AVE), "--setting", "weakly", "-o", str(tmp_path / "run"), "--epochs", "1",
        "--batch-size", "2", "--limit", str(LIMIT), "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    assert opens == {cache: 1, noisy: 1}
    opens.clear()
    evaluated = CliRunner().invoke(main, [
        "evaluate", str(run / "best"), str(cache), "--annotations", str(AVE / "Annotations.txt"),
        "--splits", str(AVE), "--split", "test", "--limit", str(LIMIT), "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output.strip().splitlines()[-1])["baselines"]["majority_class"]["train_videos"] > 0
    assert opens == {cache: 1}
