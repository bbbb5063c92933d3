"""FNAC loss terms on a 2-sample batch small enough to compute by hand (tau = 1)."""
from __future__ import annotations

import math

import pytest
import torch

from avepipe.errors import UserError
from avepipe.models import build_model
from avepipe.models.checkpoint import load_checkpoint, save_checkpoint
from avepipe.models.fnac import SoundSourceLocalizer
from avepipe.models.fnac_losses import fnac_loss
from avepipe.extract.provenance import ExtractorConfig


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# audio a0 = e0, a1 = e1; image 0 has positions (e0, e1), image 1 has (e1, e1) -> logits [[1, 1], [0, 1]]
AUDIO = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
VISUAL = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 1.0], [0.0, 1.0]]]])   # [B=2, H=1, W=2, D=2]
CONTRASTIVE = math.log(2) + math.log(1 + math.exp(-1))  # row CE mean + column CE mean, both (ln2 + ln(1+1/e)) / 2
FNS_AUDIO = (sigmoid(1) - 0.5) / 2          # softmax(I) vs softmax([[1,1],[0,1]])
FNS_VISUAL = (sigmoid(1) - sigmoid(0.5)) / 2  # mean features (.5,.5), (0,1) -> [[.5,.5],[.5,1]]
TNE = ((sigmoid(1) - sigmoid(0.25)) + (sigmoid(1) - 0.5)) / 2  # region of image 0 = (.5, 0); image 1 flat -> none


def parts(**kwargs):
    return {k: float(v) for k, v in fnac_loss(AUDIO, VISUAL, tau=1.0, **kwargs).items()}


def test_contrastive_term_by_hand():
    assert parts()["contrastive"] == pytest.approx(CONTRASTIVE, abs=1e-6)


def test_fns_terms_by_hand():
    got = parts()
    assert got["fns_audio"] == pytest.approx(FNS_AUDIO, abs=1e-6)
    assert got["fns_visual"] == pytest.approx(FNS_VISUAL, abs=1e-6)


def test_tne_term_by_hand():
    assert parts()["tne"] == pytest.approx(TNE, abs=1e-5)


def test_total_uses_the_authors_weights():
    got = parts()
    assert got["loss"] == pytest.approx(CONTRASTIVE + 100 * (FNS_AUDIO + FNS_VISUAL) + 100 * TNE, abs=1e-4)


def test_switching_off_fns_changes_only_fns():
    full, off = parts(), parts(use_fns=False)
    assert off["fns_audio"] == off["fns_visual"] == 0.0
    assert off["contrastive"] == full["contrastive"] and off["tne"] == full["tne"]
    assert full["loss"] - off["loss"] == pytest.approx(100 * (FNS_AUDIO + FNS_VISUAL), abs=1e-4)


def test_switching_off_tne_changes_only_tne():
    full, off = parts(), parts(use_tne=False)
    assert off["tne"] == 0.0
    assert (off["contrastive"], off["fns_audio"], off["fns_visual"]) == (full["contrastive"], full["fns_audio"], full["fns_visual"])
    assert full["loss"] - off["loss"] == pytest.approx(100 * TNE, abs=1e-4)


def test_baseline_is_the_contrastive_term_alone():
    off = parts(use_fns=False, use_tne=False)
    assert off["loss"] == pytest.approx(CONTRASTIVE, abs=1e-6)
    warmup = parts(contrastive_only=True)
    assert warmup["loss"] == pytest.approx(CONTRASTIVE, abs=1e-6) and warmup["tne"] > 0


def test_contrastive_uses_max_over_positions():
    # Moving image 0's matching position changes nothing (max pooling); removing it does.
    swapped = VISUAL.clone()
    swapped[0, 0] = swapped[0, 0].flip(0)
    same = fnac_loss(AUDIO, swapped, tau=1.0, use_fns=False, use_tne=False)["contrastive"]
    assert float(same) == pytest.approx(parts()["contrastive"], abs=1e-6)
    removed = VISUAL.clone()
    removed[0, 0, 0] = torch.tensor([0.0, 1.0])
    assert float(fnac_loss(AUDIO, removed, tau=1.0, use_fns=False, use_tne=False)["contrastive"]) > parts()["contrastive"] + 0.1


def test_model_maps_config_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SoundSourceLocalizer(dim=16, use_tne=False).eval()
    audio, visual = torch.randn(3, 128), torch.rand(3, 7, 7, 512)
    with torch.no_grad():
        maps = model.similarity_map(audio, visual)
    assert maps.shape == (3, 7, 7) and float(maps.abs().max()) <= 1.0 + 1e-6
    cross = model.batch_cross_similarity(audio, visual)
    assert torch.allclose(cross[torch.arange(3), torch.arange(3)], maps, atol=1e-6)
    assert SoundSourceLocalizer(**model.config).config == model.config
    save_checkpoint(tmp_path / "ckpt", model, [], ExtractorConfig(), {"epochs": 1}, task="source")
    loaded, info = load_checkpoint(tmp_path / "ckpt", task="source")
    assert info.task == "source" and info.extractor == ExtractorConfig() and info.extra == {"epochs": 1}
    assert loaded.config["use_tne"] is False
    assert torch.allclose(loaded.similarity_map(audio, visual), maps, atol=1e-6)


def test_checkpoints_of_the_other_task_are_refused_by_name(tmp_path):
    save_checkpoint(tmp_path / "source", SoundSourceLocalizer(dim=8), [], ExtractorConfig(), task="source")
    save_checkpoint(tmp_path / "event", build_model("psp", "fully", num_classes=1), ["beep", "background"],
                    ExtractorConfig())
    with pytest.raises(UserError,
                       match="this is a sound-source checkpoint, not an event .* use `avepipe source evaluate`"):
        load_checkpoint(tmp_path / "source")
    with pytest.raises(UserError, match="this is an event checkpoint.* use `avepipe evaluate`"):
        load_checkpoint(tmp_path / "event", task="source")
    with pytest.raises(UserError, match="config.json: not found"):
        load_checkpoint(tmp_path / "missing", task="source")
