"""AVEL (Tian et al., ECCV 2018) as AVE-ECCV18's code computes it, and its two PSP options.

References (tests/_avel_reference.py) re-write att_Net's forward in functional ops on the raw tensors of a
state-dict with exactly its keys; the losses are written here from their definitions: the multi-label
soft margin loss of the softmax probabilities against the one-hot segment labels (fully) or against
the video label (weakly: softmax of the per-class max over t), AVPS as in the PSP paper (Eq. 8-9) on
the cosine of the two Bi-LSTM outputs, and PSP's weighting branch score * sigmoid(ReLU(W3 score)).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe import models
from avepipe.cli import main
from avepipe.commands.import_checkpoint import import_checkpoint
from avepipe.errors import UserError
from avepipe.models import avel
from avepipe.models.avga import AVGA
from avepipe.models.checkpoint import load_checkpoint
from avepipe.event.training import defaults_for
from tests._avel_reference import AVEL_KEYS, authors_state, ref_avel_scores, soft_margin
from tests._model_learning import fit_synthetic, majority_share, train_evaluate_localize
from tests._train_helpers import T

C, BG = 28, 28


def _inputs(batch: int, segments: int = T, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 128, generator=generator, dtype=dtype),
            torch.rand(batch, segments, 7, 7, 512, generator=generator, dtype=dtype))


def _labels(batch: int, segments: int = T):
    """Segment labels with events of several classes and one background-only video; the MIL video label."""
    segment_labels = torch.full((batch, segments), BG)
    for b in range(batch - 1):
        segment_labels[b, b % 3: b % 3 + 2 + b % 4] = (5 * b) % C
    video = torch.zeros(batch, C + 1, dtype=torch.float64)
    for b in range(batch):
        events = segment_labels[b][segment_labels[b] != BG]
        video[b, events[0] if len(events) else BG] = 1.0
    return segment_labels, video


def _net(setting: str, **options):
    torch.manual_seed(0)
    return models.build_model("avel", setting, **options).double()


@pytest.mark.parametrize("segments", [10, 6])
@pytest.mark.parametrize("setting,options", [("fully", {}), ("fully", {"avps_weight": 100.0}), ("weakly", {}),
                                             ("weakly", {"weighting": "psp"})])
def test_output_shapes_and_explain(setting, options, segments):
    net = _net(setting, **options).eval()
    out = net(*_inputs(3, segments))
    assert out.logits.shape == (3, segments, C + 1)
    assert net.explain(out)["attention"].shape == (3, segments, 7, 7)
    assert torch.allclose(out.attention.sum(dim=(2, 3)), torch.ones(3, segments, dtype=torch.float64))
    if setting == "weakly":
        assert out.video_prob.shape == (3, C + 1)
    else:
        assert out.similarity.shape == (3, segments)
    assert models.build_model(**net.config).config == net.config == {
        "model": "avel", "setting": setting, "num_classes": C, **net.options()}


def test_fully_loss_and_avps_equal_the_reference():
    net = _net("fully", avps_weight=100.0)
    audio, visual = _inputs(5)
    segment_labels, video = _labels(5)
    with torch.no_grad():
        out = net(audio, visual)
        terms = net.compute_loss(out, segment_labels, video)
    margin = soft_margin(F.softmax(out.logits, dim=-1), F.one_hot(segment_labels, C + 1).double())
    cos = torch.stack([torch.stack([torch.dot(v, a) / (v.norm() * a.norm()) for v, a in zip(vs, as_)])
                       for vs, as_ in zip(out.visual_feat, out.audio_feat)])
    squared = []
    for b in range(5):
        positive = cos[b].clamp(min=0)
        events = (segment_labels[b] != BG).double()
        target = events / events.sum() if events.sum() else events
        squared += [((positive[t] / (positive.sum() + 1e-8) - target[t]) ** 2) for t in range(T)]
    avps = torch.stack(squared).mean()
    # avepipe's AVPS target 1/n is computed in float32 (models/losses.py avps_target): 1e-8 relative
    assert abs(float(terms["margin"] - margin)) < 1e-12 and abs(float(terms["avps"] / avps - 1)) < 1e-7
    assert abs(float(terms["loss"] - (margin + 100 * terms["avps"]))) < 1e-12 and float(avps) > 1e-4
    assert set(_net("fully").compute_loss(out, segment_labels, video)) == {"loss", "margin"}


@pytest.mark.parametrize("weighting", ["none", "psp"])
def test_weakly_prediction_and_loss_equal_the_reference_without_segment_labels(weighting):
    net = _net("weakly", weighting=weighting)
    audio, visual = _inputs(4)
    _, video = _labels(4)
    with torch.no_grad():
        out = net(audio, visual)
        scores = ref_avel_scores(audio, visual, avel_state(net))
        if weighting == "psp":
            scores = scores * torch.sigmoid(F.relu(scores @ net.W3.weight.T))
    assert (out.logits - scores).abs().max() < 1e-10
    video_prob = torch.stack([F.softmax(torch.stack([scores[b, :, c].max() for c in range(C + 1)]), dim=0)
                              for b in range(4)])
    assert (out.video_prob - video_prob).abs().max() < 1e-12
    unused = torch.full((4, T), -1)        # a weakly supervised loss must not read segment labels
    terms = net.compute_loss(out, unused, video)
    assert abs(float(terms["loss"] - soft_margin(video_prob, video))) < 1e-12


def avel_state(net) -> dict:
    """Our network's weights under the authors' att_Net keys (the inverse of the import mapping)."""
    state = {k.replace("attention.", "").replace("lstm_a_v.", ""): v for k, v in net.state_dict().items()}
    assert set(AVEL_KEYS) <= set(state)
    return state


def test_decision_rule_is_the_argmax_of_the_segment_scores():
    net = models.build_model("avel", "fully", num_classes=3)
    logits = torch.tensor([[[0.1, 2.0, -1.0, 0.5], [3.0, 0.0, 0.0, 3.5], [-1.0, -2.0, 0.4, 0.3]]])
    labels, confidence = net.predict_from_scores(logits)
    assert labels.tolist() == [[1, 3, 2]]
    assert torch.allclose(confidence, F.softmax(logits, dim=-1).max(dim=-1).values)


def test_options_belong_to_their_setting():
    with pytest.raises(UserError, match="^avps_weight applies to fully supervised AVEL only"):
        models.build_model("avel", "weakly", avps_weight=1.0)
    with pytest.raises(UserError, match="^the PSP weighting branch applies to weakly supervised AVEL only$"):
        models.build_model("avel", "fully", weighting="psp")
    assert "W3.weight" not in models.build_model("avel", "weakly").state_dict()


def test_authors_recipe_steps_the_learning_rate_every_iteration():
    fully, weakly = defaults_for("avel", "fully"), defaults_for("avel", "weakly")
    assert (fully.epochs, weakly.epochs) == (300, 250)
    for config in (fully, weakly):
        assert (config.batch_size, config.lr, config.lr_unit, config.lr_period, config.lr_gamma,
                config.clip_grad_norm, config.lr_milestones) == (64, 1e-3, "step", 15000, 0.1, None, ())
        assert [config.lr_at(s) for s in (0, 14999, 15000, 29999, 30000)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


# -- the paper's attention (--avga paper) -------------------------------------------------------------------

def _attention_by_hand(attention: AVGA, audio, visual, per_unit: bool):
    """z_j = sum_i h_i tanh((W_v U_v v_j)_i + audio_i) with audio_i = (W_a U_a a)_i per attention unit i
    (the paper's (W_a U_a(a_t)) 1^T), or audio_j per position j (the released code), one sum at a time."""
    w_video, b_video = attention.affine_video.weight, attention.affine_video.bias
    w_audio, b_audio = attention.affine_audio.weight, attention.affine_audio.bias
    w_v, w_g, w_h = attention.affine_v.weight, attention.affine_g.weight, attention.affine_h.weight[0]
    positions = visual.reshape(-1, visual.shape[-1])
    audio_units = w_g @ torch.relu(w_audio @ audio + b_audio)
    z = []
    for j, v_j in enumerate(positions):
        visual_units = w_v @ torch.relu(w_video @ v_j + b_video)
        z.append(sum(w_h[i] * torch.tanh(visual_units[i] + audio_units[i if per_unit else j])
                     for i in range(len(w_h))))
    alpha = torch.softmax(torch.stack(z), dim=0)
    return (alpha[:, None] * positions).sum(dim=0), alpha


@pytest.mark.parametrize("form", ["paper", "released"])
def test_avga_forms_compute_their_equation(form):
    torch.manual_seed(1)
    attention = AVGA(audio_dim=3, visual_dim=4, hidden_dim=5, positions=6, form=form).double()
    audio, visual = torch.randn(1, 1, 3, dtype=torch.float64), torch.randn(1, 1, 2, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        attended, alpha = attention(audio, visual)
        expected, expected_alpha = _attention_by_hand(attention, audio[0, 0], visual, per_unit=form == "paper")
        other, _ = _attention_by_hand(attention, audio[0, 0], visual, per_unit=form != "paper")
    assert torch.allclose(alpha.flatten(), expected_alpha, atol=1e-12)
    assert torch.allclose(attended.flatten(), expected, atol=1e-12)
    assert not torch.allclose(attended.flatten(), other, atol=1e-6)      # the two forms differ here


def test_paper_attention_cannot_prefer_a_position_by_audio_alone():
    """Known answer: where every position holds the same visual feature, the paper's audio term (the same for
    every position) leaves the attention uniform; the released per-position audio term does not."""
    audio, visual = _inputs(2, segments=3, seed=5)
    visual = visual[:, :, :1, :1].expand(-1, -1, 7, 7, -1)
    torch.manual_seed(2)
    paper = AVGA(form="paper").double()
    released = AVGA().double()
    released.load_state_dict(paper.state_dict())
    with torch.no_grad():
        assert torch.allclose(paper(audio, visual)[1], torch.full((2, 3, 7, 7), 1 / 49, dtype=torch.float64))
        assert released(audio, visual)[1].std(dim=(-2, -1)).min() > 1e-4


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_avga_option_builds_rebuilds_and_keeps_the_released_default(setting):
    assert models.build_model("avel", setting).attention.form == "released"
    net = models.build_model("avel", setting, avga="paper")
    assert net.attention.form == "paper" and net.config["avga"] == "paper"
    assert models.build_model(**net.config).attention.form == "paper"
    assert set(net.state_dict()) == set(models.build_model("avel", setting).state_dict())   # same weights, either form
    with pytest.raises(ValueError, match="^unknown AVGA form 'intended' \\(expected one of released, paper\\)$"):
        models.build_model("avel", setting, avga="intended")


# -- the authors' files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_authors_state_dict_imports_and_reproduces_their_forward(setting, tmp_path):
    state = authors_state(AVEL_KEYS, seed=3)
    torch.save(state, tmp_path / "AV_att_state.pth")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "AV_att_state.pth"), "--model", "avel",
                                                    "--setting", setting, "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    net, info = load_checkpoint(tmp_path / "ckpt")
    assert info.model_config == {"model": "avel", "setting": setting, "num_classes": C, "avga": "released",
                                 **({"avps_weight": 0.0} if setting == "fully" else {"weighting": "none"})}
    audio, visual = _inputs(3, seed=4, dtype=torch.float32)
    with torch.no_grad():
        out = net(audio, visual)
        scores = ref_avel_scores(audio, visual, state)
    assert (out.logits - scores).abs().max() < 1e-5
    assert torch.equal(net.predict(out)[0], scores.argmax(dim=-1))


def test_a_whole_pickled_model_is_refused_and_a_foreign_state_dict_is_named(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "AV_att.pt")        # what torch.save(model) writes: code
    result = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "AV_att.pt"), "--model", "avel",
                                       "--setting", "fully", "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {tmp_path / 'AV_att.pt'}: cannot be read as a weights-only PyTorch "
                                    "state-dict (")
    assert not (tmp_path / "ckpt").exists()
    torch.save({"U_v.0.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    result = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "other.pth"), "--model", "avel",
                                       "--setting", "fully", "-o", str(tmp_path / "ckpt")])
    assert result.output == (f"error: {tmp_path / 'other.pth'}: not an AVE-ECCV18 att_Net state-dict "
                             "(it has no 'L1.weight', or it has a fusion LSTM)\n")


# -- learning and the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("setting,schedule", [("fully", {}), ("weakly", {"lr": 3e-3, "epochs": 6, "videos": (32, 16)})])
def test_learns_the_synthetic_stand_in(setting, schedule, tmp_path):
    """Measured 2026-12-02, seed 0: fully 0.854, weakly 0.708; the majority class 0.448."""
    _, val_set, accuracy = fit_synthetic("avel", setting, tmp_path, **schedule)
    assert accuracy >= majority_share(val_set) + 0.2, (accuracy, majority_share(val_set))


def test_cli_trains_evaluates_and_localizes_with_attention(tmp_path):
    config, net, result, _ = train_evaluate_localize(tmp_path, "avel", "fully", "--avps-weight", "100", "--epochs", "3")
    assert config["lr_unit"] == "step" and config["avps_weight"] == 100.0
    assert type(net) is avel.FullyAVELNet and net.avps_weight == 100.0
    assert result.explain["attention"].shape == (T, 7, 7) and np.allclose(result.explain["attention"].sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_cli_trains_the_paper_attention_and_the_checkpoint_keeps_it(tmp_path):
    config, net, result, _ = train_evaluate_localize(tmp_path, "avel", "weakly", "--avga", "paper", "--epochs", "2")
    assert config["avga"] == "paper" and net.attention.form == "paper" and net.config["avga"] == "paper"
    assert np.allclose(result.explain["attention"].sum(axis=(1, 2)), 1.0, atol=1e-5)
