"""What every event model's tests share: a short fit on the synthetic stand-in, and a tiny labelled cache
for the train -> evaluate -> localize command-line test."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.extract.provenance import ExtractorConfig
from avepipe.localizer import Localizer
from avepipe.models import build_model
from avepipe.models.checkpoint import load_checkpoint
from avepipe.event.training import Trainer, defaults_for, predict_dataset
from avepipe.run.seeding import seed_everything
from tests._train_helpers import T, make_videos, tensor_splits, write_annotations, write_cache

CLASSES = ["a", "b", "c", "d", "background"]


def fit_synthetic(model: str, setting: str, tmp_path, options: dict | None = None, epochs: int = 5,
                  videos: tuple[int, int] = (24, 16), segments: int = 6, seed: int = 0,
                  **overrides):
    """(trained network, validation set, validation segment accuracy after the last epoch: none is
    picked on that set).

    ``videos`` = (training, validation) videos of ``segments`` seconds (weakly: a quarter of the
    training videos background-only, as AVE's extra videos), batches of 8; the model's authors'
    recipe otherwise, ``overrides`` changing single values. Short, for the suite's CPU budget.
    """
    train_set, val_set = tensor_splits(*videos, background_share=0.25 if setting == "weakly" else 0.0,
                                       distractors=0.4, segments=segments)
    seed_everything(seed)
    config = defaults_for(model, setting, model_options=options, epochs=epochs, seed=seed,
                          **{"batch_size": 8, **overrides})
    net = build_model(model, setting, num_classes=len(CLASSES) - 1, **config.model_options)
    trainer = Trainer(net, config, train_set, val_set, tmp_path, CLASSES, ExtractorConfig(), device="cpu",
                      progress=False)
    return net.eval(), val_set, trainer.fit().history[-1]["val_acc"]


def majority_share(dataset) -> float:
    """Accuracy of predicting background (the majority class) everywhere: what learning nothing scores."""
    return float((dataset.segment_labels == len(CLASSES) - 1).float().mean())


def write_labelled_cache(tmp_path, videos: int = 60):
    """A cache of ``videos`` generated videos (4 classes) and their annotations CSV: (root, cache, annotations)."""
    audio, visual, segments, _ = make_videos(videos, seed=0)
    ids = [f"vid{i:03d}" for i in range(videos)]
    cache = write_cache(tmp_path / "features.h5", ids, audio, visual)
    annotations = write_annotations(tmp_path / "labels.csv", ids, segments, [f"class {k}" for k in range(4)])
    return tmp_path, cache, annotations


def train_evaluate_localize(tmp_path, model: str, setting: str, *train_args: str):
    """``avepipe train`` (few epochs) -> ``evaluate`` -> localise a held-out video with its internals, on a
    tiny generated cache; asserts what must hold for any model (evaluate scores what the checkpoint
    predicts, localize labels what it predicts). Returns (train_config as saved, network, result, the
    metrics.csv rows)."""
    root, cache, annotations = write_labelled_cache(tmp_path)
    run = root / "run"
    trained = CliRunner().invoke(main, ["train", str(cache), "--annotations", str(annotations), "--model", model,
                                        "--setting", setting, "-o", str(run), "--batch-size", "8", "--seed", "0",
                                        "--device", "cpu", *train_args])
    assert trained.exit_code == 0, trained.output
    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations",
                                          str(annotations), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    net, info = load_checkpoint(run / "best")
    labels = load_annotations(annotations, classes=info.class_names)
    test_ids = load_official_splits(run / "splits", labels)["test"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], labels, test_ids))
    assert report["segment_accuracy"] == pytest.approx(float((predicted == truth).mean()))
    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=T, device="cpu")
    result = localizer.localize_features(FeatureCache(cache).read(labels.source_id(test_ids[0])), explain=True)
    assert result.labels == [info.class_names[k] for k in predicted[0]]
    state = json.loads((run / "last" / "training_state.json").read_text())
    return state["train_config"], net, result, list(csv.DictReader(open(run / "metrics.csv")))
