"""Event-task baselines: majority class and linear probe numbers on data whose answer is known,
and the warnings of ``avepipe train`` (few optimiser steps, no better than the majority class)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.event import baselines
from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.splits import load_official_splits

from tests._train_helpers import T, make_videos, write_cache, write_labels_csv


def test_majority_class_is_the_most_frequent_training_label():
    train = np.array([[4, 4, 4, 1], [4, 2, 4, 4]])
    assert baselines.majority_class(train) == 4
    assert baselines.majority_class(np.array([2, 1, 1, 2])) == 1          # ties: the lowest label
    assert baselines.majority_accuracy(train, np.array([[4, 1], [1, 1]])) == 0.25


def test_linear_probe_learns_a_linear_rule_on_the_training_split_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 12))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    x[:, 0] = x[:, 0] * 1e4 + 1e3      # wildly scaled columns: standardisation makes them equal partners
    x[:, 5] = 7.0                      # a constant column must not break standardisation
    probe = baselines.fit_linear_probe(x[:400], y[:400], num_classes=2)
    assert probe.accuracy(x[400:], y[400:]) >= 0.97
    assert probe.accuracy(x[400:], 1 - y[400:]) <= 0.03     # scored against labels it was not fitted to


def test_segment_features_are_position_mean_pool5_then_vggish():
    audio, visual, labels, _ = make_videos(3, seed=1)
    from benchmarks.generators.synthetic_features import TensorFeatures

    features, flat = baselines.segment_features(TensorFeatures(audio, visual, labels, np.zeros((3, 5))), batch_size=2)
    assert features.shape == (3 * T, 640)
    np.testing.assert_allclose(features[T + 2, :512], visual[1, 2].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_array_equal(features[T + 2, 512:], audio[1, 2])
    np.testing.assert_array_equal(flat, labels.ravel())


def test_warnings_fire_on_a_small_run_and_stay_silent_on_the_demo():
    # The run: 40 training videos, batch 128, 30 epochs -> one step per epoch.
    assert "only 30 optimiser steps" in baselines.few_steps_warning(40, 128, 30)
    # The demo: 36 training videos, batch 16, 100 epochs -> 300 steps.
    assert baselines.few_steps_warning(36, 16, 100) is None
    assert "not more than 2 points above" in baselines.near_majority_warning(0.68, 0.66)
    assert baselines.near_majority_warning(0.60, 0.66) is not None
    assert baselines.near_majority_warning(0.81, 0.66) is None


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    audio, visual, labels, _ = make_videos(30, seed=4)
    ids = [f"v{i:02d}" for i in range(30)]
    cache = write_cache(root / "cache.h5", ids, audio, visual)
    annotations = write_labels_csv(root / "labels.csv", ids, labels, ["a", "b", "c", "d"])
    result = CliRunner().invoke(main, ["train", str(cache), "--annotations", str(annotations), "-o", str(root / "run"),
                                       "--epochs", "2", "--lr", "1e-9", "--device", "cpu", "--val-fraction", "0.2",
                                       "--test-fraction", "0.2"])
    assert result.exit_code == 0, result.output
    return root, cache, annotations, result


def test_train_warns_of_few_steps_at_the_start_and_of_the_majority_class_at_the_end(small_run):
    output = small_run[3].output
    assert "warning: this run makes only 2 optimiser steps (18 training videos, batch 128, 2 epochs)" in output
    assert "the model has learnt little beyond that" in output
    assert output.index("only 2 optimiser steps") < output.index("learnt little")


def test_evaluate_reports_majority_class_and_linear_probe_beside_the_model(small_run):
    root, cache, annotations_path, _ = small_run
    result = CliRunner().invoke(main, ["evaluate", str(root / "run" / "best"), str(cache), "--annotations",
                                       str(annotations_path), "--linear-probe", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.output.strip().splitlines()[-1])
    annotations = load_annotations(annotations_path)
    splits = load_official_splits(root / "run" / "splits", annotations)
    train = annotations.segment_label_matrix(splits["train"], T)
    test = annotations.segment_label_matrix(splits["test"], T)
    values, counts = np.unique(train, return_counts=True)
    majority = values[np.argmax(counts)]
    expected = float(np.mean(test == majority))
    assert report["baselines"]["majority_class"] == {"segment_accuracy": pytest.approx(expected),
                                                     "class": annotations.classes[majority], "train_videos": 18}
    # The generated labels need audio AND visual agreement, which a linear model on the pair partly captures.
    assert report["baselines"]["linear_probe"]["segment_accuracy"] > expected
    table = CliRunner().invoke(main, ["evaluate", str(root / "run" / "best"), str(cache), "--annotations",
                                      str(annotations_path), "--device", "cpu"]).output
    assert f"(majority class): {100 * expected:.2f}% (fitted on 18 training videos)" in table
    assert "linear probe" not in table
