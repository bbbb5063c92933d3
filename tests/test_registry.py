"""A model added through the registry alone (tests/_registry_helpers.py) is trained, evaluated, localised
and imported by avepipe's commands: nothing in avepipe names it."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.errors import UserError
from avepipe.localizer import Localizer
from avepipe.models import registry
from avepipe.models.checkpoint import load_checkpoint
from avepipe.training import defaults_for
from tests._registry_helpers import CLASSES, FAMILY, PooledLinear, write_labels
from tests._train_helpers import make_videos, write_cache


@pytest.fixture
def registered():
    registry.register(FAMILY)
    yield FAMILY
    registry.unregister(FAMILY.name)


def test_registry_lists_builds_and_refuses_by_name(registered):
    assert "pooled-linear" in registry.names() and {"psp", "cpsp"} <= set(registry.names())
    net = registry.build("pooled-linear", "fully", num_classes=3, width=2.0)
    assert net.config == {"model": "pooled-linear", "setting": "fully", "num_classes": 3, "width": 2.0}
    assert registry.build(**net.config).config == net.config
    with pytest.raises(ValueError, match="pooled-linear has no 'weakly' setting"):
        registry.build("pooled-linear", "weakly")
    with pytest.raises(ValueError, match="tau does not apply to model 'pooled-linear'"):
        registry.build("pooled-linear", "fully", tau=0.1)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        registry.build("nope")
    config = defaults_for("pooled-linear", "fully", "tiny", model_options={"width": 3.0}, epochs=5)
    assert (config.epochs, config.batch_size, config.lr, config.model_options) == (5, 4, 1e-3, {"width": 3.0})
    with pytest.raises(UserError, match="no 'huge' recipe for pooled-linear fully"):
        defaults_for("pooled-linear", "fully", "huge")


def test_an_unregistered_name_is_refused_by_the_commands(tmp_path):
    result = CliRunner().invoke(main, ["train", str(tmp_path / "x.h5"), "--annotations", "ave", "--model",
                                       "pooled-linear", "-o", str(tmp_path / "run")])
    assert result.exit_code == 2 and "'pooled-linear' is not one of 'psp', 'cpsp'" in result.output


def test_train_evaluate_localize_and_import_through_the_registry_alone(registered, tmp_path):
    audio, visual, segments, _ = make_videos(40, classes=CLASSES, seed=3)
    ids = [f"v{i:02d}" for i in range(40)]
    cache = write_cache(tmp_path / "features.h5", ids, audio, visual)
    annotations = write_labels(tmp_path / "labels.csv", ids, segments)
    run = tmp_path / "run"
    runner = CliRunner()
    help_text = runner.invoke(main, ["train", "--help"]).output
    assert "pooled-linear: a test model" in " ".join(help_text.split())

    trained = runner.invoke(main, ["train", str(cache), "--annotations", str(annotations), "--model",
                                   "pooled-linear", "-o", str(run), "--seed", "1", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    state = json.loads((run / "last" / "training_state.json").read_text())
    assert (state["epoch"], state["train_config"]["batch_size"], state["train_config"]["width"]) == (6, 8, 1.0)
    lrs = [float(row["lr"]) for row in csv.DictReader(open(run / "metrics.csv"))]
    assert lrs == pytest.approx([1e-2] * 4 + [5e-3] * 2)

    evaluated = runner.invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations", str(annotations),
                                     "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    net, info = load_checkpoint(run / "best")
    assert type(net) is PooledLinear and info.model_config["model"] == "pooled-linear"
    assert 0.0 <= report["segment_accuracy"] <= 1.0

    labels = load_annotations(annotations, classes=info.class_names)
    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=10, device="cpu")
    features = FeatureCache(cache).read(labels.source_id(ids[0]))
    result = localizer.localize_features(features)
    with torch.no_grad():
        expected = net(torch.from_numpy(features.audio)[None], torch.from_numpy(features.visual)[None]).logits
    assert result.labels == [info.class_names[k] for k in expected.argmax(dim=-1)[0].tolist()]

    theirs = {f"module.{key.replace('classifier.', 'fc.')}": value for key, value in net.state_dict().items()}
    theirs["module.unused.weight"] = torch.ones(2)
    torch.save(theirs, tmp_path / "theirs.pth")
    imported = runner.invoke(main, ["import-checkpoint", str(tmp_path / "theirs.pth"), "--model", "pooled-linear",
                                    "--setting", "fully", "--classes", str(_class_file(tmp_path)),
                                    "-o", str(tmp_path / "imported")])
    assert imported.exit_code == 0, imported.output
    assert "(fully POOLED-LINEAR, width=1.0, 5 classes)" in imported.output
    again, _ = load_checkpoint(tmp_path / "imported")
    for name, value in net.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def _class_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("".join(f"class {k}\n" for k in range(CLASSES)))
    return path
