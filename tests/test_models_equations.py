"""Every equation of spec/models.md on small hand-checkable tensors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avepipe import models
from avepipe.models import losses
from avepipe.models.avga import AVGA
from avepipe.models.psp import PSP, connection_matrices, prune


def test_prune_keeps_only_entries_strictly_greater_than_tau():
    gamma = torch.tensor([[0.099, 0.1, 0.05, 0.751]])
    assert torch.equal(prune(gamma, 0.099), torch.tensor([[0.0, 0.1, 0.0, 0.751]]))


def test_prune_tau_minus_inf_keeps_all_and_zero_drops_non_positive():
    gamma = torch.tensor([[-0.5, 0.0, 0.2]])
    assert torch.equal(prune(gamma, float("-inf")), gamma)
    assert torch.equal(prune(gamma, 0.0), torch.tensor([[0.0, 0.0, 0.2]]))


def _hand_branches():
    # beta_va = ReLU(v2 a1^T / sqrt(4)) = [[1, 3], [0, 0]]
    v2 = torch.tensor([[[2.0, 0, 0, 0], [0, 2.0, 0, 0]]])
    a1 = torch.tensor([[[1.0, 0, 0, 0], [3.0, 0, 0, 0]]])
    return v2, a1


def test_connection_matrices_fully_renormalises_after_pruning():
    gamma_va, gamma_av = connection_matrices(*_hand_branches(), tau=0.25, renormalise=True)
    # rows l1-normalised: [0.25, 0.75] -> 0.25 dropped (not > 0.25) -> renormalised [0, 1]; zero row stays 0
    assert torch.allclose(gamma_va, torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]), atol=1e-6)
    # beta_av = beta_va^T = [[1, 0], [3, 0]] -> [[1, 0], [1, 0]]
    assert torch.allclose(gamma_av, torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]), atol=1e-6)


def test_connection_matrices_weakly_has_no_second_normalisation():
    gamma_va, _ = connection_matrices(*_hand_branches(), tau=0.25, renormalise=False)
    assert torch.allclose(gamma_va, torch.tensor([[[0.0, 0.75], [0.0, 0.0]]]), atol=1e-6)
    keep_all, _ = connection_matrices(*_hand_branches(), tau=float("-inf"), renormalise=True)
    assert torch.allclose(keep_all, torch.tensor([[[0.25, 0.75], [0.0, 0.0]]]), atol=1e-6)


def test_psp_block_second_normalisation_present_in_fully_absent_in_weakly():
    torch.manual_seed(0)
    fully, weakly = PSP(tau=0.12, fully=True).eval(), PSP(tau=0.12, fully=False).eval()
    weakly.load_state_dict(fully.state_dict(), strict=False)  # shared branch layers and layer norm
    a, v = torch.randn(2, 10, 256), torch.randn(2, 10, 256)
    *_, g_full, _ = fully(a, v)
    *_, g_weak, _ = weakly(a, v)
    full_sums, weak_sums = g_full.sum(-1), g_weak.sum(-1)
    assert torch.allclose(full_sums[full_sums > 0], torch.ones_like(full_sums[full_sums > 0]), atol=1e-5)
    assert (weak_sums < 0.999).any(), "pruning should remove mass that weakly does not restore"
    assert torch.allclose(g_weak, g_full * weak_sums.unsqueeze(-1), atol=1e-6)
    assert not hasattr(weakly, "v_fc") and not hasattr(weakly, "a_fc")


def test_avga_adds_audio_term_along_the_position_axis():
    torch.manual_seed(0)
    avga = AVGA(audio_dim=8, visual_dim=16, hidden_dim=12, positions=4).eval()
    with torch.no_grad():
        avga.affine_v.weight.zero_()           # s = 0, so z_p = sum(h) * tanh(u_p)
        avga.affine_h.weight.fill_(1.0)
    audio, visual = torch.randn(1, 1, 8), torch.randn(1, 1, 2, 2, 16)
    attended, attention = avga(audio, visual)
    u = avga.affine_g(F.relu(avga.affine_audio(audio.reshape(1, 8))))        # [1, 4]
    expected_alpha = F.softmax(4.0 * torch.tanh(u), dim=-1)                   # u[:, None, :] would be uniform
    assert torch.allclose(attention.reshape(1, 4), expected_alpha, atol=1e-6)
    assert not torch.allclose(expected_alpha, torch.full_like(expected_alpha, 0.25), atol=1e-3)
    assert torch.allclose(attended.reshape(1, 16), expected_alpha @ visual.reshape(4, 16), atol=1e-6)


def test_avps_target_and_value_by_hand():
    is_event = torch.tensor([[True, True, False, False], [False, False, False, False]])
    assert torch.equal(losses.avps_target(is_event), torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0, 0.0]]))
    similarity = torch.tensor([[1.0, 0.0, 1.0, -2.0], [1.0, 1.0, 1.0, 1.0]])
    # video 0: ReLU/sum = [.5, 0, .5, 0] vs [.5, .5, 0, 0] -> 0.5 ; video 1: 4 * 0.25^2 = 0.25 ; /8 entries
    assert losses.avps_loss(similarity, is_event).item() == pytest.approx(0.75 / 8, abs=1e-6)


def test_psa_segment_by_hand_and_all_background_skipped():
    event_video = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    background_video = torch.randn(3, 2)
    fusion = torch.stack([event_video, background_video])
    is_event = torch.tensor([[True, True, False], [False, False, False]])
    positive = 2 * math.exp(1 / 0.6)           # S = 1 with both event segments
    expected = -math.log(positive / (positive + math.exp(0.0)))
    assert losses.psa_segment_loss(fusion, is_event).item() == pytest.approx(expected, rel=1e-5)
    only_background = background_video.unsqueeze(0).requires_grad_()
    value = losses.psa_segment_loss(only_background, torch.zeros(1, 3, dtype=torch.bool))
    assert value.item() == 0.0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(only_background.grad).all()


def _chord(degrees: float) -> float:
    return 2 * math.sin(math.radians(degrees) / 2)


def test_psa_video_hardest_positive_and_three_closest_negatives():
    angles = [0, 60, 20, 30, 90, 180, 45]
    categories = torch.tensor([0, 0, 1, 1, 1, 1, -1])
    fusion = torch.tensor([[[math.cos(math.radians(a)), math.sin(math.radians(a))]] for a in angles]) * 3.0
    # (hardest positive angle gap, closest negative angle gaps) per video, read off the circle by hand
    cases = [(60, [20, 30, 90]), (60, [30, 30, 40]), (160, [20, 40]), (150, [30, 30]), (90, [90, 30]),
             (160, [180, 120])]
    expected = sum(max(0.0, _chord(p) - sum(map(_chord, n)) / len(n) + 0.2) for p, n in cases) / len(cases)
    assert losses.psa_video_loss(fusion, categories).item() == pytest.approx(expected, rel=1e-5)


def test_weak_bce_against_mean_of_one_hot_segment_labels():
    target = losses.weak_video_target(torch.tensor([[0, 0, 2, 2]]), 3)
    assert torch.equal(target, torch.tensor([[0.5, 0.0, 0.5]]))
    prob = torch.tensor([[0.7, 0.2, 0.1]])
    expected = -(0.5 * math.log(0.7) + 0.5 * math.log(0.3) + math.log(0.8)
                 + 0.5 * math.log(0.1) + 0.5 * math.log(0.9)) / 3
    assert losses.weak_bce_loss(prob, target).item() == pytest.approx(expected, rel=1e-5)


def test_cpsp_decision_rule():
    net = models.build_model("cpsp", "fully")
    category = torch.full((28,), 0.01)
    category[5] = 1 - 0.01 * 27
    scores = torch.cat([torch.tensor([[0.9], [0.5], [0.2]]), category.expand(3, 28)], dim=-1).unsqueeze(0)
    labels, confidence = net.predict_from_scores(scores)
    assert labels.tolist() == [[5, 28, 28]]                  # exactly 0.5 is not > 0.5 -> background
    assert torch.allclose(confidence, torch.tensor([[0.9 * category[5].item(), 0.5, 0.8]]))


def test_fully_loss_is_cross_entropy_plus_100_avps():
    torch.manual_seed(0)
    net = models.build_model("psp", "fully").eval()
    out = net(torch.randn(2, 10, 128), torch.randn(2, 10, 7, 7, 512))
    labels = torch.tensor([[28] * 3 + [4] * 7, [1] * 10])
    parts = net.compute_loss(out, labels, torch.zeros(2, 29))
    ce = F.cross_entropy(out.logits.reshape(-1, 29), labels.reshape(-1))
    assert torch.allclose(parts["ce"], ce)
    assert torch.allclose(parts["loss"], ce + 100 * losses.avps_loss(out.similarity, labels != 28))


@pytest.mark.parametrize("segments", [10, 37])
@pytest.mark.parametrize("model,setting", [("psp", "fully"), ("psp", "weakly"), ("cpsp", "fully")])
def test_shapes_for_any_length(model, setting, segments):
    net = models.build_model(model, setting).eval()
    out = net(torch.randn(2, segments, 128), torch.randn(2, segments, 7, 7, 512))
    assert out.fusion.shape == out.audio_feat.shape == out.visual_feat.shape == (2, segments, 256)
    assert out.gamma_va.shape == out.gamma_av.shape == (2, segments, segments)
    assert out.attention.shape == (2, segments, 7, 7)
    if model == "cpsp":
        assert out.event_logits.shape == (2, segments) and out.category_logits.shape == (2, 28)
    else:
        assert out.logits.shape == (2, segments, 29)
    assert (out.similarity is None) == (setting == "weakly")
    assert (out.video_prob is None) == (setting != "weakly")
    labels, confidence = net.predict(out)
    assert labels.shape == confidence.shape == (2, segments)
    assert torch.equal(labels, net.predict_from_scores(net.segment_scores(out))[0])
    rebuilt = models.build_model(**net.config)
    assert type(rebuilt) is type(net) and rebuilt.config == net.config


def test_published_tau_defaults():
    assert models.build_model("psp", "fully").tau == 0.099
    assert models.build_model("cpsp", "fully").tau == 0.099
    assert models.build_model("psp", "weakly").tau == 0.095
    assert models.build_model("psp", "fully", tau=float("-inf")).psp.tau == float("-inf")


def test_weakly_psp_initialises_as_the_authors_weakly_model():
    """PSP weakly_model.py:200-208 draws Xavier for L1/L2 only; linear_v (512 -> 128) and W3 (29 -> 1) keep
    PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which is narrower than Xavier's sqrt(6/(fan_in+fan_out))."""
    torch.manual_seed(0)
    net = models.build_model("psp", "weakly")
    assert net.linear_v.weight.abs().max() <= 1 / math.sqrt(512) < math.sqrt(6 / (512 + 128))
    assert net.linear_v.bias.abs().max() > 0
    assert net.W3.weight.abs().max() <= 1 / math.sqrt(29)
    assert net.L1.weight.abs().max() > 1 / math.sqrt(256)            # Xavier: bound sqrt(6/320) = 0.137
