"""`avepipe source train` and `avepipe source evaluate` on a small moving-sources cache."""
from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from avepipe.cli import main
from avepipe.data.splits import seeded_split
from avepipe.source.api import SourceEvaluateOptions, evaluate_source
from benchmarks.generators.moving_sources import MovingSourceSpec, make_moving_sources
from avepipe.data.cache import CacheWriter
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.checkpoint import save_checkpoint

VIDEOS, SECONDS = 12, 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A cache plus its boxes in both layouts: the synth generator's (list + scenes.json) and self-describing."""
    root = tmp_path_factory.mktemp("fnac-cli")
    features, boxes = make_moving_sources(MovingSourceSpec(videos=VIDEOS, seconds=SECONDS, seed=5))
    with CacheWriter(root / "cache.h5", ExtractorConfig()) as writer:
        for f in features:
            writer.write(f)
    (root / "described.json").write_text(json.dumps(boxes))
    synth = root / "synth"
    synth.mkdir()
    (synth / "boxes.json").write_text(json.dumps(
        {v: [entry["boxes"].get(str(t)) for t in range(SECONDS)] for v, entry in boxes.items()}))
    (synth / "scenes.json").write_text(json.dumps({"size": [224, 224], "videos": {}}))
    return root


@pytest.fixture(scope="module")
def runs(data):
    common = ["--epochs", "1", "--batch-size", "16", "--seed", "1", "--device", "cpu"]
    results = {name: CliRunner().invoke(main, ["source", "train", str(data / "cache.h5"),
                                               "-o", str(data / name), *common, *flags])
               for name, flags in (("fnac", []), ("baseline", ["--no-fns", "--no-tne"]))}
    return results


def test_train_writes_checkpoint_metrics_and_plot(data, runs):
    for name, switches in (("fnac", True), ("baseline", False)):
        result = runs[name]
        assert result.exit_code == 0, result.output
        assert f"sound-source checkpoint {data / name / 'best'}" in result.output
        config = json.loads((data / name / "best" / "config.json").read_text())
        assert config["task"] == "source" and config["class_names"] == []
        assert config["model"]["use_fns"] is switches and config["model"]["use_tne"] is switches
        assert config["extra"]["epochs"] == 1 and config["extra"]["batch_size"] == 16
        assert config["extra"]["lr"] == 1e-3 and config["extra"]["warmup_epochs"] == 1   # the small-data schedule
        assert config["model"]["pooling"] == "softmax" and config["model"]["dropout_visual"] == 0.0
        # FNS/TNE weights follow the batch: the authors' 100 at 128 is 12.5 at this run's 16
        assert config["model"]["fns_weight"] == config["model"]["tne_weight"] == 12.5
        rows = list(csv.DictReader(open(data / name / "metrics.csv")))
        assert [r["epoch"] for r in rows] == ["1"] and float(rows[0]["train_contrastive"]) > 0
        with Image.open(data / name / "curves.png") as image:
            assert image.format == "PNG" and image.size[0] >= 400


def test_train_help_shows_the_source_defaults():
    result = CliRunner().invoke(main, ["source", "train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for default in ("authors (their train.py): --epochs 20, --batch-size 128, --lr 1e-4, 3 contrastive",
                    "weight decay 1e-4", "--no-fns", "--no-tne", "--schedule [small-data|authors]"):
        assert default in text


def test_each_task_has_only_its_own_options_and_an_existing_run_is_kept(data, runs, tmp_path):
    event_option = CliRunner().invoke(main, ["source", "train", str(data / "cache.h5"), "-o", str(tmp_path / "r"),
                                             "--annotations", "labels.csv"])
    assert event_option.exit_code == 2 and "No such option '--annotations'" in event_option.output
    source_option = CliRunner().invoke(main, ["train", str(data / "cache.h5"), "-o", str(tmp_path / "r"),
                                              "--annotations", "labels.csv", "--no-fns"])
    assert source_option.exit_code == 2 and "No such option '--no-fns'" in source_option.output
    no_labels = CliRunner().invoke(main, ["train", str(data / "cache.h5"), "-o", str(tmp_path / "r")])
    assert no_labels.exit_code == 2 and "Missing option '--annotations'" in no_labels.output
    again = CliRunner().invoke(main, ["source", "train", str(data / "cache.h5"), "-o", str(data / "fnac")])
    assert again.exit_code == 2
    assert (f"error: {data / 'fnac'}: already holds a sound-source run (last/); resume it or train into another "
            "directory") in again.output
    assert not any("Traceback" in r.output for r in (event_option, source_option, no_labels, again))
    assert not (tmp_path / "r").exists()


def test_evaluate_on_the_synth_boxes_matches_the_api(data, runs):
    checkpoint = data / "fnac" / "best"
    args = ["source", "evaluate", str(checkpoint), str(data / "cache.h5"), "--device", "cpu"]
    result = CliRunner().invoke(main, [*args, "--boxes", str(data / "synth" / "boxes.json"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    test_videos = json.loads((checkpoint / "config.json").read_text())["extra"]["splits"]["test"]
    assert report["samples"] == len(test_videos) * SECONDS and report["videos"] == len(test_videos) >= 1
    assert report["split"] == "test" and report["threshold"] == 0.5
    # the generator's layout (frame size from scenes.json) reads as the self-describing one does
    options = SourceEvaluateOptions(checkpoint, (data / "cache.h5",), data / "described.json", device="cpu")
    assert report == evaluate_source(options).to_json()
    for key in ("ciou", "auc", "mean_iou", "peak_in_box"):
        assert 0.0 <= report[key] <= 1.0
    median = CliRunner().invoke(main, [*args, "--boxes", str(data / "described.json"), "--threshold", "median"])
    assert median.exit_code == 0, median.output
    assert "cIoU: fraction of seconds with IoU >= 0.5" in median.output and "binarised at median" in median.output
    bad = CliRunner().invoke(main, [*args, "--boxes", str(data / "described.json"), "--threshold", "2"])
    assert bad.exit_code == 2 and "between 0 and 1, or 'median'" in bad.output
    no_boxes = CliRunner().invoke(main, args)
    assert no_boxes.exit_code == 2 and "Missing option '--boxes'" in no_boxes.output


def test_a_checkpoint_of_the_other_task_is_refused_by_name(data, runs, tmp_path):
    event = save_checkpoint(tmp_path / "event", build_model("psp", "fully", num_classes=1), ["beep", "background"],
                            ExtractorConfig())
    source = data / "fnac" / "best"
    as_event = CliRunner().invoke(main, ["evaluate", str(source), str(data / "cache.h5"), "--annotations", "x.csv"])
    assert as_event.exit_code == 2
    assert (f"error: {source}: this is a sound-source checkpoint, not an event one; "
            "use `avepipe source evaluate`") in as_event.output
    as_source = CliRunner().invoke(main, ["source", "evaluate", str(event), str(data / "cache.h5"),
                                          "--boxes", str(data / "described.json")])
    assert as_source.exit_code == 2
    assert (f"error: {event}: this is an event checkpoint, not a sound-source one; "
            "use `avepipe evaluate`") in as_source.output
    assert "Traceback" not in as_event.output + as_source.output


def test_evaluate_commands_have_only_their_own_task_options(data, runs):
    checkpoint = str(data / "fnac" / "best")
    event_option = CliRunner().invoke(main, ["source", "evaluate", checkpoint, str(data / "cache.h5"),
                                             "--boxes", str(data / "described.json"), "--split", "val", "--limit", "2"])
    assert event_option.exit_code == 2 and "No such option '--limit'" in event_option.output
    source_option = CliRunner().invoke(main, ["evaluate", checkpoint, str(data / "cache.h5"),
                                              "--annotations", "x.csv", "--threshold", "median"])
    assert source_option.exit_code == 2 and "No such option '--threshold'" in source_option.output
    assert "Traceback" not in event_option.output + source_option.output


def test_source_subcommand_reports_user_errors_when_invoked_on_its_own(data, tmp_path):
    """The one-line error lives on every command, not only on the top-level group."""
    from avepipe.commands.source import evaluate

    result = CliRunner().invoke(evaluate, [str(tmp_path / "none"), str(data / "cache.h5"), "--boxes", "b.json"])
    assert result.exit_code == 2
    missing = tmp_path / "none"
    assert result.output == f"error: {missing / 'config.json'}: not found (is {missing} an avepipe checkpoint directory?)\n"


def test_train_with_boxes_refuses_a_validation_split_without_boxes_before_training(data, tmp_path):
    """Model selection needs boxed validation seconds; without them the run stops at once, naming the file."""
    boxes = json.loads((data / "described.json").read_text())
    val = seeded_split(sorted(boxes), (0.8, 0.1, 0.1), 3)["val"]
    no_val = tmp_path / "no_val_boxes.json"
    no_val.write_text(json.dumps({v: entry for v, entry in boxes.items() if v not in val}))
    result = CliRunner().invoke(main, ["source", "train", str(data / "cache.h5"), "-o", str(tmp_path / "run"),
                                       "--boxes", str(no_val), "--seed", "3", "--epochs", "1", "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"error: {no_val}: none of the {len(val)} validation videos has a boxed second with audio, so no epoch "
        "can be selected; use a larger --val-fraction or another --seed")
    assert not (tmp_path / "run").exists()


def test_tau_option_reaches_the_model_and_must_be_positive(data, tmp_path):
    common = ["source", "train", str(data / "cache.h5"), "--epochs", "1", "--batch-size", "16", "--device", "cpu"]
    result = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "warm"), "--tau", "0.3"])
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "warm" / "best" / "config.json").read_text())["model"]
    assert model["tau"] == 0.3 and model["pooling"] == "softmax"      # the schedule's other options are kept
    default = json.loads((data / "fnac" / "best" / "config.json").read_text())["model"]
    assert default["tau"] == 0.03
    bad = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "bad"), "--tau", "0"])
    assert bad.exit_code == 2 and "Invalid value for '--tau': must be positive, got 0.0" in bad.output
    assert not (tmp_path / "bad").exists()


def test_train_warns_at_the_end_when_the_localiser_is_no_better_than_the_fixed_cell(data, tmp_path):
    # lr 1e-12: the projections stay at their random start, which knows nothing of the objects
    args = ["source", "train", str(data / "cache.h5"), "--boxes", str(data / "described.json"), "--epochs", "1",
            "--lr", "1e-12", "--seed", "1", "--device", "cpu", "--val-fraction", "0.25"]
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "stuck")])
    assert result.exit_code == 0, result.output
    assert "warning: the best validation peak-in-box" in result.stderr
    assert f"(this run: {VIDEOS - 3 - 1};" in result.stderr      # 12 videos: 3 validation, 1 test
    unboxed = CliRunner().invoke(main, [*args[:3], *args[5:], "-o", str(tmp_path / "unboxed")])
    assert unboxed.exit_code == 0 and "warning" not in unboxed.stderr   # nothing to compare without boxes


def test_an_interrupted_run_resumes_exactly_and_keeps_its_settings(data, tmp_path):
    """One epoch, then --resume to two, ends with the weights, losses and best/ of two epochs in one go."""
    common = ["source", "train", str(data / "cache.h5"), "--batch-size", "16", "--seed", "2", "--device", "cpu",
              "--boxes", str(data / "described.json"), "--val-fraction", "0.25"]
    straight = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "straight"), "--epochs", "2"])
    assert straight.exit_code == 0, straight.output
    first = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "resumed"), "--epochs", "1"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "resumed"), "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    for kept in ("best", "last"):
        a = load_file(str(tmp_path / "straight" / kept / "model.safetensors"))
        b = load_file(str(tmp_path / "resumed" / kept / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), kept
    rows = [list(csv.DictReader(open(tmp_path / run / "metrics.csv"))) for run in ("straight", "resumed")]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]] and len(rows[0]) == 2
    assert [r["val_peak_in_box"] for r in rows[0]] == [r["val_peak_in_box"] for r in rows[1]]
    changed = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "resumed"), "--epochs", "3", "--resume",
                                        "--lr", "0.5"])
    assert changed.exit_code == 2
    assert (f"error: {tmp_path / 'resumed'}: a resumed run keeps its hyper-parameters; differing: "
            "lr: run 0.001 vs given 0.5") in changed.output
    no_boxes = [a for a in common if a not in ("--boxes", str(data / "described.json"))]
    unvalidated = CliRunner().invoke(main, [*no_boxes, "-o", str(tmp_path / "resumed"), "--epochs", "3", "--resume"])
    assert unvalidated.exit_code == 2
    assert (f"error: {tmp_path / 'resumed'}: the run keeps the epoch that is best on the validation boxes; resume "
            "it with its boxes file") in unvalidated.output
    nothing = CliRunner().invoke(main, [*common, "-o", str(tmp_path / "none"), "--resume"])
    assert nothing.exit_code == 2
    assert f"error: {tmp_path / 'none'}: nothing to resume (no last/training_state.json)" in nothing.output


def test_a_checkpoint_directory_of_a_run_from_before_best_and_last_still_evaluates(data, runs, tmp_path):
    """Runs written before 0.x kept their checkpoint in checkpoint/: the same files, read the same way."""
    old = tmp_path / "old-run" / "checkpoint"
    shutil.copytree(data / "fnac" / "best", old)
    args = [str(data / "cache.h5"), "--boxes", str(data / "described.json"), "--device", "cpu", "--json"]
    then = CliRunner().invoke(main, ["source", "evaluate", str(old), *args])
    now = CliRunner().invoke(main, ["source", "evaluate", str(data / "fnac" / "best"), *args])
    assert then.exit_code == now.exit_code == 0, then.output
    assert json.loads(then.output.splitlines()[-1]) == json.loads(now.output.splitlines()[-1])


def test_fractions_that_leave_no_training_video_are_refused_before_anything_is_written(data, tmp_path):
    result = CliRunner().invoke(main, ["source", "train", str(data / "cache.h5"), "-o", str(tmp_path / "run"),
                                       "--val-fraction", "0.6", "--test-fraction", "0.4", "--device", "cpu"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "error: validation and test fractions 0.6 and 0.4 leave no training videos"
    assert not (tmp_path / "run").exists()
