"""Checks every registered event model goes through: train -> evaluate -> localize by the command line on a tiny
generated cache, and learning the synthetic stand-in."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.localizer import Localizer
from avepipe.models.checkpoint import load_checkpoint
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.event.training import Trainer, defaults_for, predict_dataset
from avepipe.run.seeding import seed_everything
from tests._train_helpers import make_videos, tensor_splits, write_annotations, write_cache


@dataclass
class Chain:
    history: list[dict]        # metrics.csv rows
    net: object                # the best checkpoint's network
    localized: object          # LocalizationResult (with explain) of the first test video


def train_evaluate_localize(root: Path, model: str, setting: str, videos: int = 24, epochs: int = 2) -> Chain:
    """Trains ``model`` by the CLI, checks that ``evaluate`` reports the accuracy of the checkpoint's own
    predictions on the test split and that ``localize`` labels a test video as those predictions do."""
    names = [f"class {k}" for k in range(4)]
    audio, visual, segments, _ = make_videos(videos, seed=0)
    ids = [f"vid{i:03d}" for i in range(videos)]
    cache = write_cache(root / "features.h5", ids, audio, visual)
    annotations = write_annotations(root / "labels.csv", ids, segments, names)
    run = root / "run"
    trained = CliRunner().invoke(main, ["train", str(cache), "--annotations", str(annotations), "--model", model,
                                        "--setting", setting, "-o", str(run), "--epochs", str(epochs),
                                        "--batch-size", "8", "--seed", "0", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations",
                                          str(annotations), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    net, info = load_checkpoint(run / "best")
    labels = load_annotations(annotations, classes=info.class_names)
    test_ids = load_official_splits(run / "splits", labels)["test"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], labels, test_ids))
    assert report["videos"] == len(test_ids) > 0
    assert report["segment_accuracy"] == pytest.approx(float((predicted == truth).mean()))
    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=10, device="cpu")
    result = localizer.localize_features(FeatureCache(cache).read(labels.source_id(test_ids[0])), explain=True)
    assert result.labels == [info.class_names[k] for k in predicted[0]]
    return Chain(list(csv.DictReader(open(run / "metrics.csv"))), net, result)


SYNTHETIC_CLASSES = ["a", "b", "c", "d", "background"]


@dataclass
class Fit:
    accuracy: float            # validation segment accuracy after the last epoch (none picked on this set)
    majority: float            # the majority label's share of validation segments
    history: list[dict]
    net: object                # the trained network
    val_set: object


def fit_synthetic(root: Path, model: str, setting: str, train: int, val: int, epochs: int,
                  background_share: float = 0.0, segments: int = 10, **schedule) -> Fit:
    """Trains on the synthetic stand-in (40% one-modality distractors) with ``schedule`` overriding the recipe."""
    train_set, val_set = tensor_splits(train, val, background_share=background_share, distractors=0.4,
                                       segments=segments)
    majority = float(torch.bincount(val_set.segment_labels.flatten()).max() / val_set.segment_labels.numel())
    seed_everything(0)
    config = defaults_for(model, setting, epochs=epochs, seed=0, **schedule)
    net = build_model(model, setting, num_classes=len(SYNTHETIC_CLASSES) - 1)
    result = Trainer(net, config, train_set, val_set, root, SYNTHETIC_CLASSES, ExtractorConfig(), device="cpu",
                     progress=False).fit()
    return Fit(result.history[-1]["val_acc"], majority, result.history, net.eval(), val_set)


def reference_event_category_terms(out, segment_labels, background: int) -> dict:
    """Loops: mean over segments of BCE(event logit, event-or-not); mean over videos of the cross-entropy of the
    category logits against the largest class index over the video's segments, background counted as 0."""
    batch, segments = segment_labels.shape
    event, category = [], []
    for b in range(batch):
        for t in range(segments):
            y = float(segment_labels[b, t] != background)
            p = torch.sigmoid(out.event_logits[b, t])
            event.append(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))
        target = max(int(c) if c != background else 0 for c in segment_labels[b])
        category.append(torch.logsumexp(out.category_logits[b], 0) - out.category_logits[b, target])
    return {"event": sum(event) / (batch * segments), "category": sum(category) / batch}
