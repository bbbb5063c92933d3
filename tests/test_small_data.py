"""Small training sets: a recipe's build options, and the warnings of ``train`` and ``evaluate`` that say
when a run on few videos has not learnt (issue #26). Each warning fires on a run that does not learn
and stays silent on one that does."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from avepipe.event import baselines
from avepipe.cli import main
from avepipe.errors import UserError
from avepipe.models import registry
from avepipe.models.psp_cpsp import TAU, build_psp
from avepipe.models.registry import ModelFamily, Recipe
from avepipe.event.training import defaults_for

from tests._train_helpers import make_videos, write_cache, write_labels_csv


@pytest.fixture
def toy_family():
    recipes = {"authors": {"fully": Recipe(epochs=3, batch_size=4, lr=1e-3)},
               "sharp": {"fully": Recipe(epochs=5, batch_size=2, lr=1e-2, model_options={"tau": 0.5})},
               "bad": {"fully": Recipe(epochs=5, batch_size=2, lr=1e-2, model_options={"avps": 1.0})}}
    yield registry.register(ModelFamily("toy_psp", "PSP under another name", build_psp, recipes, ("fully",), (TAU,)))
    registry.unregister("toy_psp")


def test_a_recipe_sets_build_options_under_the_users_own(toy_family):
    assert defaults_for("toy_psp", "fully").model_options == {}
    sharp = defaults_for("toy_psp", "fully", "sharp")
    assert (sharp.model_options, sharp.batch_size, sharp.lr) == ({"tau": 0.5}, 2, 1e-2)
    assert defaults_for("toy_psp", "fully", "sharp", {"tau": 0.2}).model_options == {"tau": 0.2}
    assert defaults_for("toy_psp", "fully", "sharp", {"tau": None}).model_options == {"tau": 0.5}
    with pytest.raises(UserError, match="^no model takes the option avps \\(given for 'toy_psp'\\)$"):
        defaults_for("toy_psp", "fully", "bad")


@pytest.mark.parametrize("model", ["psp", "cpsp"])
def test_psp_and_cpsp_declare_a_measured_small_data_recipe(model):
    recipe = registry.get(model).recipe("fully", registry.SMALL_DATA)
    assert recipe.batch_size <= 16 and "measured" in recipe.source
    config = defaults_for(model, "fully", registry.SMALL_DATA)
    assert config.recipe == registry.SMALL_DATA and config.batch_size == recipe.batch_size


def test_the_warnings_fire_on_what_does_not_learn_and_stay_silent_otherwise():
    # (a) a small training split, unless the run already uses the small-data recipe
    note = baselines.small_data_note(42, "authors", "PSP 0.9 vs probe 0.9")
    assert note == ("note: 42 training videos is a small training split; the 'small-data' recipe is made for it "
                    "(PSP 0.9 vs probe 0.9).")
    assert baselines.small_data_note(42, "small-data", "x") is None
    assert baselines.small_data_note(3339, "authors", "x") is None
    assert baselines.small_data_note(42, "authors", None) is None        # no small-data recipe for this model
    # (b) said once, at the end of the first third of the epochs, when still at the majority class
    assert "after 20 of 60 epochs the training accuracy 67.0% is within 3 points" in \
        baselines.not_learning_warning(20, 60, 0.67, 0.66)
    assert baselines.not_learning_warning(19, 60, 0.67, 0.66) is None
    assert baselines.not_learning_warning(21, 60, 0.67, 0.66) is None
    assert baselines.not_learning_warning(20, 60, 0.75, 0.66) is None
    assert baselines.not_learning_warning(1, 2, 0.5, 0.66) is not None          # below the majority: not learning
    # (c) a validation split too small to select an epoch on: under 20 videos or 200 segments
    assert baselines.small_validation_warning(6, 60).startswith(
        "warning: the validation split has 6 videos (60 segments), fewer than 20 videos or 200 segments")
    assert baselines.small_validation_warning(30, 150) is not None
    assert baselines.small_validation_warning(20, 200) is None
    # (d) evaluate: below the majority class or the linear probe
    found = {"majority_class": {"segment_accuracy": 0.66}, "linear_probe": {"segment_accuracy": 0.93}}
    assert baselines.below_baseline_warning(0.64, found) == (
        "warning: the model's segment accuracy 64.00% is below the majority class (66.00%) and more than 5 points "
        "below the linear probe (93.00%): it has not learnt what the features carry.")
    assert baselines.below_baseline_warning(0.87, found).endswith(
        "is more than 5 points below the linear probe (93.00%): it has not learnt what the features carry.")
    assert baselines.below_baseline_warning(0.88, found) is None      # within the small-data recipe's bar
    assert baselines.below_baseline_warning(0.95, found) is None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_data")
    audio, visual, labels, _ = make_videos(40, seed=5, noise=0.2)
    ids = [f"v{i:02d}" for i in range(40)]
    return root, write_cache(root / "cache.h5", ids, audio, visual), write_labels_csv(root / "labels.csv", ids, labels,
                                                                                ["a", "b", "c", "d"])


def _train(data, name, *options):
    root, cache, annotations = data
    result = CliRunner().invoke(main, ["train", str(cache), "--annotations", str(annotations), "-o", str(root / name),
                                       "--device", "cpu", "--val-fraction", "0.2", "--test-fraction", "0.2",
                                       *options])
    assert result.exit_code == 0, result.output
    return result.output


def _evaluate(data, name):
    root, cache, annotations = data
    result = CliRunner().invoke(main, ["evaluate", str(root / name / "best"), str(cache), "--annotations",
                                       str(annotations), "--device", "cpu", "--linear-probe"])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_and_evaluate_warn_on_a_run_that_does_not_learn(data):
    output = _train(data, "frozen", "--epochs", "3", "--lr", "1e-9")      # the weights barely move
    assert "note: 24 training videos is a small training split; the 'small-data' recipe is made for it (" in output
    assert "warning: after 1 of 3 epochs the training accuracy" in output
    assert "the model is not learning." in output
    assert "warning: the validation split has 8 videos (80 segments)" in output
    assert _evaluate(data, "frozen").strip().splitlines()[-1].startswith("warning: the model's segment accuracy")


def test_a_run_that_learns_is_told_only_what_is_true(data):
    output = _train(data, "learns", "--recipe", "small-data", "--epochs", "9")
    assert "small training split" not in output         # it uses the small-data recipe already
    assert "not learning" not in output
    assert "the validation split has 8 videos" in output   # still true: 8 videos is too few to pick an epoch on
    report = _evaluate(data, "learns")
    assert "warning" not in report, report
    accuracy = float(report.split("segment accuracy (paper metric, 5-way): ")[1].split("%")[0])
    assert accuracy > 90
