"""A checkpoint written before the issue-12 reorganisation (commit 0ea6ca6) opens and gives that code's numbers."""
from __future__ import annotations

import numpy as np
import torch

from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import AVE_RELEASED
from avepipe.localizer import Localizer
from avepipe.models.checkpoint import load_checkpoint
from tests._paths import TEST_DATA_DIR

LEGACY = TEST_DATA_DIR / "legacy_checkpoint"
CLASSES = ["dog", "guitar", "siren", "background"]


def _inputs():
    """The seeded inputs the old code was run on (see legacy_checkpoint/README.md)."""
    generator = torch.Generator().manual_seed(2026)
    return torch.randn(1, 13, 128, generator=generator), torch.rand(1, 13, 7, 7, 512, generator=generator)


def test_event_checkpoint_gives_the_old_scores():
    expected = np.load(LEGACY / "expected.npz")
    net, info = load_checkpoint(LEGACY / "event")
    audio, visual = _inputs()
    with torch.no_grad():
        scores = net.segment_scores(net(audio[:, :10], visual[:, :10]))[0].numpy()
    assert info.class_names == CLASSES and info.extractor == AVE_RELEASED
    np.testing.assert_allclose(scores, expected["segment_scores"], rtol=1e-5, atol=1e-6)


def test_localizer_on_old_checkpoint_gives_the_old_labels_and_confidences():
    expected = np.load(LEGACY / "expected.npz")
    net, info = load_checkpoint(LEGACY / "event")
    audio, visual = _inputs()
    localizer = Localizer(net, None, None, info.extractor, info.class_names, 10, "cpu")
    result = localizer.localize_features(VideoFeatures("v", visual[0].numpy(), audio[0].numpy(), 13.0, 16.0, True))
    assert [s.label for s in result.segments] == list(expected["labels"])
    np.testing.assert_allclose([s.confidence for s in result.segments], expected["confidences"], rtol=1e-5)


def test_source_checkpoint_gives_the_old_maps():
    expected = np.load(LEGACY / "expected.npz")
    model, info = load_checkpoint(LEGACY / "source", task="source")
    audio, visual = _inputs()
    with torch.no_grad():
        maps = model.similarity_map(audio[0], visual[0]).numpy()
    assert info.task == "source" and model.config["dim"] == 16
    np.testing.assert_allclose(maps, expected["source_maps"], rtol=1e-5, atol=1e-6)
