"""A checkpoint written before the issue-12 reorganisation (commit 0ea6ca6) opens and gives that code's numbers."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import AVE_RECIPE, AVE_RELEASED
from avepipe.localizer import Localizer
from avepipe.models import build_model
from avepipe.models.checkpoint import load_checkpoint
from tests._paths import TEST_DATA_DIR

LEGACY = TEST_DATA_DIR / "legacy_checkpoint"
CLASSES = ["dog", "guitar", "siren", "background"]


@pytest.fixture
def legacy_event(tmp_path):
    """The old event checkpoint: its config.json as 0ea6ca6 wrote it, its weights rebuilt here.

    The weights are the seeded, untrained ones the old code saved (seed 0, see the README): 6 MB of
    random numbers are not kept in the repository. Their layout (every key, dtype and shape the old
    file held) is, so a renamed or reshaped parameter still fails this test.
    """
    torch.manual_seed(0)
    weights = build_model("psp", "fully", num_classes=3).state_dict()
    layout = json.loads((LEGACY / "event" / "weights_layout.json").read_text(encoding="utf-8"))
    assert {k: {"dtype": "F32", "shape": list(v.shape)} for k, v in weights.items()} == layout
    directory = tmp_path / "event"
    directory.mkdir()
    shutil.copy(LEGACY / "event" / "config.json", directory)
    save_file(weights, directory / "model.safetensors")
    with safe_open(directory / "model.safetensors", "pt") as written:
        assert sorted(written.keys()) == sorted(layout)
    return directory


def _inputs():
    """The seeded inputs the old code was run on (see legacy_checkpoint/README.md)."""
    generator = torch.Generator().manual_seed(2026)
    return torch.randn(1, 13, 128, generator=generator), torch.rand(1, 13, 7, 7, 512, generator=generator)


def test_event_checkpoint_gives_the_old_scores(legacy_event):
    expected = np.load(LEGACY / "expected.npz")
    net, info = load_checkpoint(legacy_event)
    audio, visual = _inputs()
    with torch.no_grad():
        scores = net.segment_scores(net(audio[:, :10], visual[:, :10]))[0].numpy()
    # It recorded the released AVE features as described before the AVE recipe was recorded: it reads back as
    # that description, and the recipe fields are what tell it apart from features made after the change.
    assert info.class_names == CLASSES
    assert info.extractor == dataclasses.replace(AVE_RELEASED, frame_sampling="pts", frame_resize="ffmpeg-bilinear",
                                                 audio_framing="per-second")
    differences = info.extractor.differences(AVE_RELEASED)
    assert [d.split(":")[0] for d in differences[:-1]] == list(AVE_RECIPE)
    assert "before avepipe reproduced the AVE recipe" in differences[-1]
    np.testing.assert_allclose(scores, expected["segment_scores"], rtol=1e-5, atol=1e-6)


def test_localizer_on_old_checkpoint_gives_the_old_labels_and_confidences(legacy_event):
    expected = np.load(LEGACY / "expected.npz")
    net, info = load_checkpoint(legacy_event)
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
