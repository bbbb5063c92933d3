"""Learning on generated features where an event exists only where audio and visual classes agree.

Real feature shapes ([T,7,7,512] visual, [T,128] audio), few videos, few epochs: the CPU
budget of the suite, not the published schedule (300 epochs of batches of 128 over 3,339
videos, ~8,000 Adam steps). Deviations, chosen so a short run ends on a settled model:
batches of 8 (8 steps per epoch from 64 videos; the cost per epoch does not depend on the
batch size) and the lr multiplied by 0.3 after epoch 6 (the published schedule decays
after 60 and 120). 40% of the background segments carry the video's class in one modality
only (seen silent, heard off-screen, or paired with another class): labelling every
segment where the class is seen or heard scores 76.75% on these validation sets, predicting
background everywhere 61.5%, so the thresholds below need the audio-visual agreement.

The tests assert the validation accuracy after the last epoch (no epoch picked on the set
they report). Measured per seed (generator and init seed together), this schedule, seeds
0-9: fully 0.98-1.0 at every seed (0.9975 at seed 0); weakly, with linear_v and W3 at PyTorch's
default initialisation as in the authors' weakly_model.py, 0.7825-0.8575 (mean 0.826; 8 of 10 seeds
>= 0.80, 0.8225 at seed 0; with Xavier for those two layers it was 0.8325-0.915). The tests use
seed 0: fully is far above its bar; weakly is 2 points above it there, and every seed is above
the one-modality rule (76.75%).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avepipe.event.training import Trainer, defaults_for
from avepipe.run.seeding import seed_everything
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.models.psp_cpsp import TAU_FULLY, TAU_WEAKLY

from tests._train_helpers import tensor_splits

CLASSES = ["a", "b", "c", "d", "background"]
DISTRACTORS = 0.4
SCHEDULE = {"batch_size": 8, "lr_milestones": (6,), "lr_gamma": 0.3}
FULLY_EPOCHS = 8
# Weakly: lr 2e-3 (1e-3 had not converged in 10 epochs; 3e-3 without decay oscillated),
# a quarter of the training videos background-only (as AVE's 178; never in validation).
WEAK_EPOCHS, WEAK_LR, WEAK_BACKGROUND = 10, 2e-3, 0.25
# The ablation: 14 epochs, lr x0.3 after epoch 10, the schedule benchmarks/psp_ablation.py measured over 10 seeds.
ABLATION_SCHEDULE = {"epochs": 14, "lr_milestones": (10,)}


def _fit(tmp_path, setting, train_set, val_set, epochs, tau=None, seed=0, **overrides):
    seed_everything(seed)
    config = defaults_for("psp", setting, model_options={"tau": tau}, epochs=epochs, seed=seed, **{**SCHEDULE, **overrides})
    net = build_model("psp", setting, num_classes=4, **config.model_options)
    trainer = Trainer(net, config, train_set, val_set, tmp_path, CLASSES, ExtractorConfig(), device="cpu",
                      progress=False)
    return trainer.fit()


def _background_share(dataset) -> float:
    """Accuracy of predicting background everywhere: what a model that learnt nothing scores."""
    return float((dataset.segment_labels == len(CLASSES) - 1).float().mean())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fully_psp_reaches_95_percent(tmp_path, precision):
    train_set, val_set = tensor_splits(64, 40, distractors=DISTRACTORS)
    assert _background_share(val_set) < 0.65
    result = _fit(tmp_path, "fully", train_set, val_set, epochs=FULLY_EPOCHS, precision=precision)
    assert result.history[-1]["val_acc"] >= 0.95, result.history     # the last epoch: none picked on this set


def test_weakly_psp_reaches_80_percent(tmp_path):
    """Video-level supervision only: BCE against mean_t of the one-hot segment labels.

    That target says how many segments are events, not which; segment accuracy comes
    from the network scoring each segment on its own evidence. Training includes
    background-only videos (as AVE's 178), whose target says "no segment of this class
    is an event" although the class is seen or heard alone in many of their segments:
    they help teach that one modality is not enough. Validation videos all have
    an event.
    """
    train_set, val_set = tensor_splits(64, 40, background_share=WEAK_BACKGROUND, distractors=DISTRACTORS)
    assert _background_share(val_set) < 0.65
    result = _fit(tmp_path, "weakly", train_set, val_set, epochs=WEAK_EPOCHS, lr=WEAK_LR)
    assert result.history[-1]["val_acc"] >= 0.80, result.history


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_tau_inf_is_the_papers_no_psp_ablation(setting):
    """Table 1 "w/o PSP": v_psp = v_l and a_psp = a_l, everything else unchanged. ``--tau inf`` prunes
    every connection (no beta is > inf), so it is exactly that network; checked against a hand-built one."""
    torch.manual_seed(0)
    net = build_model("psp", setting, tau=float("inf"), num_classes=4).eval()
    audio, visual = torch.randn(2, 5, 128), torch.rand(2, 5, 7, 7, 512)
    with torch.no_grad():
        out = net(audio, visual)
        psp = net.psp
        if setting == "fully":
            audio_emb = net.fa(audio)
            attended, _ = net.attention(audio_emb, visual)
            a_l, v_l = net.lstm_a_v(audio_emb, net.fv(attended))
            v_f, a_f = psp.layer_norm(F.relu(psp.v_fc(v_l))), psp.layer_norm(F.relu(psp.a_fc(a_l)))
        else:
            attended, _ = net.attention(audio, visual)
            a_l, v_l = net.lstm_a_v(audio, net.linear_v(attended))
            v_f, a_f = psp.layer_norm(v_l), psp.layer_norm(a_l)
    assert torch.count_nonzero(out.gamma_va) == 0 and torch.count_nonzero(out.gamma_av) == 0
    torch.testing.assert_close(out.visual_feat, v_f, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.audio_feat, a_f, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.fusion, (v_f + a_f) / 2, rtol=0, atol=1e-6)
    # the published tau does propagate on the same input, so the reference is not trivially equal
    net.tau = TAU_WEAKLY if setting == "weakly" else TAU_FULLY
    with torch.no_grad():
        assert not torch.allclose(net(audio, visual).fusion, out.fusion, atol=1e-4)


def test_no_psp_does_worse_when_the_deciding_audio_is_in_other_seconds(tmp_path):
    """Table 1's "w/o PSP" (tau = inf) against PSP (tau 0.099) on the asynchronous variant: the
    object is seen, silent, in the event window and the sound that decides whether it is an
    event is heard in two other seconds. Same data, same initialisation seed, accuracy after the
    last epoch (no epoch picked on the reported set).

    ``benchmarks/psp_ablation.py`` measured this schedule over seeds 0-9 (README, "PSP ablation"):
    PSP wins at every seed by 2.25 to 9.25 points; the test's seed 0 gives 7.25 (1.0 vs 0.9275).
    The margin asked here, 3 points, is 12 of the 400 validation segments.
    """
    train_set, val_set = tensor_splits(64, 40, asynchronous=True, distractors=DISTRACTORS)
    floor = _background_share(val_set)
    psp = _fit(tmp_path / "psp", "fully", train_set, val_set, **ABLATION_SCHEDULE).history[-1]["val_acc"]
    no_psp = _fit(tmp_path / "no_psp", "fully", train_set, val_set, tau=math.inf,
                  **ABLATION_SCHEDULE).history[-1]["val_acc"]
    assert psp >= floor + 0.10, (psp, floor)           # PSP learnt the cross-second rule
    assert psp >= no_psp + 0.03, (psp, no_psp)
