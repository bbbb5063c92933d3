"""CMBS, fully and weakly supervised: shapes, forward and import against a functional re-implementation
of the authors' code (tests/_cmbs_reference.py), losses against hand-written ones, the decision rules,
the recipes and the checkpoint round trip."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from avepipe import models
from avepipe.commands.import_checkpoint import ave_classes, import_checkpoint
from avepipe.errors import UserError
from avepipe.extract.provenance import AVE_RELEASED
from avepipe.models.checkpoint import load_checkpoint, save_checkpoint
from avepipe.models.outputs import ModelOutput
from avepipe.event.training import defaults_for
from tests._cmbs_reference import authors_cmbs_state, reference_forward

C, BG = 28, 28


def _inputs(batch: int, segments: int = 10, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 128, generator=generator, dtype=torch.float64),
            torch.rand(batch, segments, 7, 7, 512, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("setting", ["fully", "weakly"])
@pytest.mark.parametrize("segments", [10, 6])
def test_output_and_explain_shapes(setting, segments):
    torch.manual_seed(0)
    net = models.build_model("cmbs", setting).eval()
    audio, visual = (x.float() for x in _inputs(2, segments))
    with torch.no_grad():
        out = net(audio, visual)
    assert out.extras["gate"].shape == (2, segments)
    assert ((out.extras["gate"] > 0) & (out.extras["gate"] < 1)).all()
    if setting == "fully":
        assert out.event_logits.shape == (2, segments) and out.category_logits.shape == (2, C)
    else:
        assert out.category_logits.shape == (2, C + 1) and out.video_prob.shape == (2, C + 1)
        assert out.logits.shape == (2, segments, C + 1)
    explained = net.explain(out)
    assert {name: tuple(value.shape) for name, value in explained.items()} == {
        "attention": (2, segments, 7, 7), "self_spatial": (2, segments, 7, 7),
        "audio_on_visual": (2, segments, segments), "visual_on_audio": (2, segments, segments)}
    for maps in (explained["attention"], explained["self_spatial"]):
        assert torch.allclose(maps.sum(dim=(-1, -2)), torch.ones(2, segments))
    labels, confidence = net.predict(out)
    assert labels.shape == confidence.shape == (2, segments) and labels.max() <= BG


def _authors_file(tmp_path: Path, setting: str, seed: int) -> tuple[Path, dict]:
    state = authors_cmbs_state(setting, seed=seed)
    torch.save(state, tmp_path / f"{setting}.pth.tar")
    return tmp_path / f"{setting}.pth.tar", {k[len("module."):]: v for k, v in state.items()}


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_authors_file_imports_and_reproduces_their_forward(tmp_path, setting):
    """Their DataParallel state-dict, template layers and decoder self-attention included, imports through
    the CLI; the network then computes what their code computes (float32 against the float64 reference)."""
    path, state = _authors_file(tmp_path, setting, seed=3)
    result = CliRunner().invoke(import_checkpoint, [str(path), "--model", "cmbs", "--setting", setting,
                                                    "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    net, info = load_checkpoint(tmp_path / "ckpt")
    expected_options = {"decision": "segment"} if setting == "weakly" else {}
    assert info.model_config == {"model": "cmbs", "setting": setting, "num_classes": C, **expected_options}
    audio, visual = _inputs(4, seed=5)
    with torch.no_grad():
        out = net(audio.float(), visual.float())
        ref = reference_forward(state, setting, audio, visual)
    assert (out.extras["gate"] - ref["gate"]).abs().max() < 1e-5
    for name in ("audio_on_visual", "visual_on_audio"):
        assert (out.extras[name] - ref[name]).abs().max() < 1e-5, name
    assert (out.attention - ref["spatial"]).abs().max() < 1e-5
    labels = net.predict(out)[0]
    if setting == "fully":
        assert (out.event_logits - ref["event_logits"]).abs().max() < 1e-4
        assert (out.category_logits - ref["category_logits"]).abs().max() < 1e-4
        expected = torch.where(ref["event_logits"] > 0, ref["category_logits"].argmax(-1)[:, None], BG)
    else:
        assert (out.category_logits - ref["video_logits"]).abs().max() < 1e-4
        assert (out.video_prob - ref["video_prob"]).abs().max() < 1e-5
        expected = torch.where(ref["gate"] > 0.5, ref["video_logits"].argmax(-1)[:, None], BG)
    assert torch.equal(labels, expected)


def test_a_code_carrying_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return Path.touch, (marker,)

    torch.save({"v_fc.weight": Payload()}, tmp_path / "evil.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "evil.pth.tar"), "--model", "cmbs", "--setting",
                                                    "fully", "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 2 and not marker.exists()
    assert f"{tmp_path / 'evil.pth.tar'}: cannot be read as a weights-only PyTorch state-dict (" in result.output


# -- losses -------------------------------------------------------------------------------------------
def _bce_with_logits(x, y):
    return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))


def _cross_entropy(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _segment_labels():
    """An event of class 5 in seconds 2-4, one of class 11 in 0-9 with background at 7, one background-only video,
    and a video with two classes (3 then 9: their code's video class is the larger index)."""
    labels = torch.full((4, 10), BG)
    labels[0, 2:5] = 5
    labels[1, :] = 11
    labels[1, 7] = BG
    labels[3, 1:3], labels[3, 6:8] = 3, 9
    return labels


def test_fully_loss_terms_equal_hand_written_ones():
    torch.manual_seed(1)
    net = models.build_model("cmbs", "fully").double().eval()
    with torch.no_grad():
        out = net(*_inputs(4))
    segment_labels = _segment_labels()
    terms = net.compute_loss(out, segment_labels, torch.zeros(4, C + 1))
    video_class = [5, 11, 0, 9]
    event = [[float(segment_labels[b, t] != BG) for t in range(10)] for b in range(4)]
    expected = {
        "event": sum(_bce_with_logits(float(out.event_logits[b, t]), event[b][t]) for b in range(4) for t in range(10)) / 40,
        "gate": sum(_bce_with_logits(float(out.extras["gate"][b, t]), event[b][t]) for b in range(4) for t in range(10)) / 40,
        "category": sum(_cross_entropy(out.category_logits[b].tolist(), video_class[b]) for b in range(4)) / 4,
        "cas": sum(_cross_entropy(out.extras["cas"][b].tolist(), video_class[b]) for b in range(4)) / 4}
    for name, value in expected.items():
        assert float(terms[name]) == pytest.approx(value, rel=1e-10), name
    assert float(terms["loss"]) == pytest.approx(sum(expected.values()), rel=1e-10)


def test_weakly_loss_reads_the_video_label_only():
    torch.manual_seed(2)
    net = models.build_model("cmbs", "weakly").double().eval()
    with torch.no_grad():
        out = net(*_inputs(4))
    video_labels = torch.zeros(4, C + 1, dtype=torch.float64)
    video_labels[0, 5] = video_labels[1, 11] = video_labels[2, BG] = video_labels[3, 3] = video_labels[3, 9] = 1
    expected = 0.0
    for b in range(4):
        for c in range(C + 1):
            p, y = float(out.video_prob[b, c]), float(video_labels[b, c])
            expected -= (y * math.log(1 / (1 + math.exp(-p))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-p))))
    expected /= 4 * (C + 1)
    terms = net.compute_loss(out, torch.full((4, 10), -7), video_labels)      # segment labels nonsense: unread
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-10) and float(terms["video"]) == float(terms["loss"])


# -- decision rules -----------------------------------------------------------------------------------
def _weak_output(gate, video_logits):
    return ModelOutput(category_logits=torch.tensor([video_logits]), extras={"gate": torch.tensor([gate])})


def test_weakly_segment_and_released_video_rules_on_hand_set_outputs():
    """Gates 0.9, 0.2, 0.6; class 2 leads. segment: event where gate > 0.5; released-video: the authors' rule,
    sigmoid(gate) > 0.5 always, so class 2 everywhere. With background leading, both say background."""
    logits = [0.0, 1.0, 3.0] + [0.0] * (C - 3) + [2.0]
    probs = torch.softmax(torch.tensor(logits), dim=0)
    segment = models.build_model("cmbs", "weakly", num_classes=C)
    video = models.build_model("cmbs", "weakly", num_classes=C, decision="released-video")
    out = _weak_output([0.9, 0.2, 0.6], logits)
    labels, confidence = segment.predict(out)
    assert labels.tolist() == [[2, BG, 2]]
    # confidence: the label's class probability (a background segment also gets P(event) P(background category))
    assert torch.allclose(confidence, torch.tensor([[0.9 * probs[2], 0.8 + 0.2 * probs[BG], 0.6 * probs[2]]]))
    assert video.predict(out)[0].tolist() == [[2, 2, 2]]
    assert torch.allclose(video.predict(out)[1], probs[2].expand(1, 3))
    assert video.predict(_weak_output([0.9, 0.2, 0.6], logits[:-1] + [5.0]))[0].tolist() == [[BG] * 3]
    p = segment.class_probabilities(segment.segment_scores(out))[0]
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(p[1, BG], 0.8 + 0.2 * probs[BG]) and torch.allclose(p[1, 2], 0.2 * probs[2])


def test_fully_rule_is_event_logit_then_video_category():
    net = models.build_model("cmbs", "fully", num_classes=C)
    category = torch.zeros(1, C)
    category[0, 7] = 4.0
    out = ModelOutput(event_logits=torch.tensor([[2.0, -1.0, 0.1]]), category_logits=category)
    assert net.predict(out)[0].tolist() == [[7, BG, 7]]


# -- recipes and the checkpoint -----------------------------------------------------------------------
@pytest.mark.parametrize("setting, lr, milestones", [("fully", 7e-4, (10, 20, 30)), ("weakly", 6e-4, (10, 20, 40))])
def test_authors_recipe(setting, lr, milestones):
    config = defaults_for("cmbs", setting)
    assert (config.epochs, config.batch_size, config.lr, config.lr_milestones, config.lr_gamma,
            config.clip_grad_norm, config.optimizer, config.weight_decay) == (200, 64, lr, milestones, 0.5, 0.5, "adam", 0)
    # torch's MultiStepLR stepped once per epoch, as their loop does, gives the lr of each 1-based epoch
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=0.5)
    for epoch in range(1, 50):
        assert config.lr_at(epoch) == pytest.approx(optimizer.param_groups[0]["lr"]), epoch
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("setting, options", [("fully", {}), ("weakly", {"decision": "released-video"})])
def test_build_config_and_checkpoint_round_trip(tmp_path, setting, options):
    torch.manual_seed(4)
    net = models.build_model("cmbs", setting, **options).eval()
    assert net.config == {"model": "cmbs", "setting": setting, "num_classes": C, **options}
    rebuilt = models.build_model(**net.config)
    assert type(rebuilt) is type(net) and rebuilt.config == net.config
    save_checkpoint(tmp_path, net, ave_classes() + ["background"], AVE_RELEASED)
    loaded, info = load_checkpoint(tmp_path)
    assert info.model_config == net.config
    audio, visual = (x.float() for x in _inputs(2, seed=6))
    with torch.no_grad():
        assert torch.equal(net.predict(net(audio, visual))[0], loaded.predict(loaded(audio, visual))[0])


def test_decision_is_refused_for_fully_and_unknown_values():
    with pytest.raises(ValueError, match=r"decision does not apply to model 'cmbs' \(fully\)"):
        models.build_model("cmbs", "fully", decision="segment")
    with pytest.raises(UserError) as refused:
        defaults_for("cmbs", "fully", model_options={"decision": "segment"})
    assert str(refused.value) == "the option decision applies to cmbs weakly only, not fully"
    with pytest.raises(ValueError, match=r"unknown CMBS decision 'video' \(expected one of segment, released-video\)"):
        models.build_model("cmbs", "weakly", decision="video")


def test_set_dropout_reaches_the_attention_dropout():
    net = models.build_model("cmbs", "weakly")
    net.set_dropout(0.0)
    assert all(m.dropout == 0.0 for m in net.modules() if isinstance(m, torch.nn.MultiheadAttention))
    assert all(m.p == 0.0 for m in net.modules() if isinstance(m, torch.nn.Dropout))
