"""Learning on generated features where an event exists only where audio and visual classes agree.

Real feature dimensions ([T,7,7,512] visual, [T,128] audio), few videos, few
epochs: the CPU budget of the suite, not the published schedule.
"""
from __future__ import annotations

import pytest

from avepipe.training import Trainer, defaults_for, seed_everything
from extract.provenance import ExtractorConfig
from models import build_model

from _train_helpers import tensor_splits

CLASSES = ["a", "b", "c", "d", "background"]


def _fit(tmp_path, setting, train_set, val_set, epochs, tau=None):
    seed_everything(0)
    config = defaults_for("psp", setting, tau=tau, epochs=epochs, batch_size=8, seed=0)
    net = build_model("psp", setting, tau=config.tau, num_classes=4)
    trainer = Trainer(net, config, train_set, val_set, tmp_path, CLASSES, ExtractorConfig(), device="cpu",
                      progress=False)
    return trainer.fit()


def test_fully_psp_reaches_95_percent(tmp_path):
    train_set, val_set = tensor_splits(64, 40)
    result = _fit(tmp_path, "fully", train_set, val_set, epochs=4)
    assert result.best_val_accuracy >= 0.95, result.history

