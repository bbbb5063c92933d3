"""CMRAN, fully and weakly supervised: shapes, losses, decision rule, the authors' files, learning, the CLI.

The references are tests/_cmran_reference.py (the forward pass with hand-written attention on their raw
state dict) and, below, the losses in float64 loops from their description: fully, the mean over segments
of BCE(event logit, event-or-not) plus the cross-entropy of the category logits against the video's
largest segment class index (background counted 0); weakly, softmax_k(max_t sigmoid(e_t) * c_k) over the
29 categories and the multi-label soft margin loss against the 29-column video label.
"""
from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.commands.import_checkpoint import import_checkpoint
from avepipe.models import build_model, registry
from avepipe.models.checkpoint import load_checkpoint
from avepipe.models.cmran import CMRANNet, WeaklyCMRANNet
from avepipe.models.outputs import ModelOutput
from avepipe.event.training import defaults_for
from tests._cmran_reference import authors_cmran_keys, authors_cmran_state, cmran_forward
from tests._model_family_helpers import fit_synthetic, reference_event_category_terms
from tests._model_learning import train_evaluate_localize

C, BG = 28, 28
SEGMENTS = [[BG, 3, 3, BG, BG], [5, 5, 5, 5, 5], [BG] * 5, [BG, BG, 7, 9, BG]]


def _inputs(batch: int, segments: int, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 128, generator=generator, dtype=dtype),
            torch.rand(batch, segments, 7, 7, 512, generator=generator, dtype=dtype))


def _video_labels(segment_labels: torch.Tensor) -> torch.Tensor:
    """Event classes of each video; the background column only for a background-only video (as the dataset)."""
    labels = torch.zeros(len(segment_labels), C + 1, dtype=torch.float64)
    for b, row in enumerate(segment_labels):
        events = row[row != BG]
        labels[b, events if len(events) else BG] = 1
    return labels


def _net(setting: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("cmran", setting).double().eval()


@pytest.mark.parametrize("setting,categories", [("fully", 28), ("weakly", 29)])
@pytest.mark.parametrize("segments", [10, 6])
def test_shapes_and_what_explain_shows(setting, categories, segments):
    net = _net(setting)
    with torch.no_grad():
        out = net(*_inputs(3, segments))
    assert out.event_logits.shape == (3, segments) and out.category_logits.shape == (3, categories)
    explained = net.explain(out)
    assert explained["attention"].shape == (3, segments, 7, 7)
    assert torch.allclose(explained["attention"].sum(dim=(2, 3)), torch.ones(3, segments, dtype=torch.float64))
    for name in ("audio_attends_visual", "visual_attends_audio"):
        rows = explained[name].sum(dim=-1)       # the rest of each row attends to the query's own modality
        assert explained[name].shape == (3, segments, segments) and bool(((rows > 0) & (rows < 1)).all())
    labels, _ = net.predict(out)
    assert labels.shape == (3, segments) and net.class_probabilities(net.segment_scores(out)).shape[-1] == C + 1
    if setting == "weakly":
        assert out.video_prob.shape == (3, 29)


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_forward_equals_the_reference_on_the_authors_state(setting):
    state = authors_cmran_state(setting)
    plain = {key[len("module."):]: value.double() for key, value in state.items()}
    net = build_model("cmran", setting).double().eval()
    net.load_state_dict({key: plain[key] for key in net.state_dict()})
    audio, visual = _inputs(2, 10, seed=1)
    with torch.no_grad():
        out = net(audio, visual)
    event, category, spatial, audio_visual, visual_audio = cmran_forward(audio, visual, plain, 2 if setting == "weakly" else 4)
    assert (out.event_logits - event).abs().max() < 1e-10 and (out.category_logits - category).abs().max() < 1e-10
    assert (out.attention.reshape(2, 10, 49) - spatial).abs().max() < 1e-12
    assert (out.extras["audio_attends_visual"] - audio_visual).abs().max() < 1e-12
    assert (out.extras["visual_attends_audio"] - visual_audio).abs().max() < 1e-12


def test_fully_loss_terms_equal_the_reference():
    net = _net("fully")
    segment_labels = torch.tensor([row + row for row in SEGMENTS])
    out = net(*_inputs(4, 10))
    terms = net.compute_loss(out, segment_labels, _video_labels(segment_labels))
    expected = reference_event_category_terms(out, segment_labels, BG)
    expected["loss"] = expected["event"] + expected["category"]
    for name, value in expected.items():
        assert abs(float((terms[name] - value).detach())) < 1e-10, name


def test_weakly_loss_and_video_prediction_equal_the_reference():
    net = _net("weakly")
    segment_labels = torch.tensor([row + row for row in SEGMENTS])
    out = net(*_inputs(4, 10))
    target = _video_labels(segment_labels)
    # the labels say which segments are events; a weakly supervised loss must not read them
    terms = net.compute_loss(out, torch.full_like(segment_labels, -1), target)
    loss = 0.0
    for b in range(4):
        pooled = torch.stack([max(torch.sigmoid(out.event_logits[b, t]) * out.category_logits[b, k] for t in range(10))
                              for k in range(29)])
        prob = torch.softmax(pooled, 0)
        assert (out.video_prob[b] - prob).abs().max() < 1e-12
        loss = loss + (target[b] * F.softplus(-prob) + (1 - target[b]) * F.softplus(prob)).mean()
    assert abs(float((terms["loss"] - loss / 4).detach())) < 1e-10 and torch.equal(terms["loss"], terms["video"])


def test_decision_rule_on_hand_set_logits():
    """Event where sigmoid(event logit) > 0.5: the category argmax, which weakly may itself be background."""
    event = torch.tensor([[2.0, -1.0, 0.3]])
    fully = CMRANNet(num_classes=3).eval()
    labels, _ = fully.predict(ModelOutput(event_logits=event, category_logits=torch.tensor([[0.1, 3.0, -1.0]])))
    assert labels.tolist() == [[1, 3, 1]]
    weakly = WeaklyCMRANNet(num_classes=3).eval()
    out = ModelOutput(event_logits=event, category_logits=torch.tensor([[0.1, 0.0, -1.0, 2.0]]))
    labels, confidence = weakly.predict(out)
    probabilities = weakly.class_probabilities(weakly.segment_scores(out))
    p_event = torch.sigmoid(event)
    p_background_category = torch.softmax(torch.tensor([0.1, 0.0, -1.0, 2.0]), 0)[3]
    assert labels.tolist() == [[3, 3, 3]]
    assert torch.allclose(probabilities[..., 3], 1 - p_event + p_event * p_background_category)
    assert torch.allclose(probabilities.sum(dim=-1), torch.ones(1, 3))
    assert torch.allclose(confidence, probabilities[..., 3])      # every segment is background here


def test_recipes_and_config_round_trip():
    fully, weakly = defaults_for("cmran", "fully"), defaults_for("cmran", "weakly")
    assert (fully.epochs, fully.batch_size, fully.lr, fully.lr_milestones, fully.lr_gamma, fully.clip_grad_norm) == (
        200, 32, 5e-4, (10, 20, 30), 0.5, 0.1)
    assert (weakly.lr_milestones, weakly.clip_grad_norm) == ((5, 20, 40), 0.5)
    for setting in ("fully", "weakly"):
        net = _net(setting)
        assert net.config == {"model": "cmran", "setting": setting, "num_classes": 28}
        rebuilt = registry.build(**net.config)
        assert type(rebuilt) is type(net) and rebuilt.state_dict().keys() == net.state_dict().keys()


def test_encoder_layers_start_equal_as_the_authors_clones():
    net = build_model("cmran", "fully")
    first, second = net.video_encoder.encoder["layers"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_authors_file_imports_through_the_cli_and_predicts_as_the_reference(setting, tmp_path):
    """Their state dict holds template layers and decoder self-attention their forward never uses: accepted."""
    state = authors_cmran_state(setting, seed=5)
    assert {key: tuple(value.shape) for key, value in state.items()} == authors_cmran_keys(setting)
    torch.save(state, tmp_path / "cmran.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "cmran.pth.tar"), "--model", "cmran", "--setting",
                                                    setting, "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    net, info = load_checkpoint(tmp_path / "ckpt")
    assert info.model_config == {"model": "cmran", "setting": setting, "num_classes": 28}
    audio, visual = _inputs(3, 10, seed=2, dtype=torch.float32)
    with torch.no_grad():
        labels, _ = net.predict(net(audio, visual))
    plain = {key[len("module."):]: value.double() for key, value in state.items()}
    event, category, *_ = cmran_forward(audio.double(), visual.double(), plain, 2 if setting == "weakly" else 4)
    expected = torch.where(torch.sigmoid(event) > 0.5, category.argmax(dim=-1, keepdim=True), BG)
    assert torch.equal(labels, expected)


def test_a_code_carrying_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"v_fc.weight": Payload()}, handle)
    result = CliRunner().invoke(main, ["import-checkpoint", str(path), "--model", "cmran", "--setting", "fully", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: cannot be read as a weights-only PyTorch state-dict (")
    assert not marker.exists()


# -- learning on the synthetic stand-in ---------------------------------------------------------------------
def test_fully_learns_the_synthetic_stand_in(tmp_path):
    """Accuracy after the last epoch (none picked on this set) clearly above the majority label (background)."""
    fit = fit_synthetic(tmp_path, "cmran", "fully", 48, 24, epochs=6, batch_size=8, lr=1e-3, lr_milestones=())
    assert fit.accuracy >= max(0.85, fit.majority + 0.15), (fit.accuracy, fit.majority, fit.history)


def test_weakly_learns_the_video_categories_of_the_synthetic_stand_in(tmp_path):
    """What the weak objective supervises: each validation video's category (argmax of the video prediction
    over the event classes), against always answering the most frequent category; at the authors' lr.

    Six-second videos, where events are the larger share of segments (as in AVE). Nothing in the video-level
    loss tells event from background segments of a video with an event; on this stand-in the network labels
    every segment an event of the video's category (measured 2026-12-02, 10 epochs: segment accuracy 0.552,
    exactly the event share, against a background share of 0.448; 0.50 at lr 1e-3, 0.44 at 2e-3)."""
    fit = fit_synthetic(tmp_path, "cmran", "weakly", 32, 24, epochs=5, segments=6, background_share=0.25,
                        batch_size=8, lr_milestones=())
    val = fit.val_set
    categories = val.video_labels[:, :4].argmax(dim=1)
    with torch.no_grad():
        predicted = fit.net(val.audio, val.visual).video_prob[:, :4].argmax(dim=1)
    most_frequent = float(torch.bincount(categories).max() / len(categories))
    accuracy = float((predicted == categories).float().mean())
    assert accuracy >= most_frequent + 0.25, (accuracy, most_frequent, fit.history)
    assert fit.accuracy > fit.majority, (fit.accuracy, fit.majority)


# -- train -> evaluate -> localize through the CLI ------------------------------------------------------------
def test_cli_trains_evaluates_and_localizes(tmp_path):
    _, net, localized, history = train_evaluate_localize(tmp_path, "cmran", "fully", "--epochs", "2")
    assert len(history) == 2 and {"train_event", "train_category"} <= set(history[0])
    assert type(net) is CMRANNet and localized.explain["attention"].shape == (10, 7, 7)
    for relation in ("audio_attends_visual", "visual_attends_audio"):     # drawn by localize --explain too
        assert localized.explain[relation].shape == (10, 10)
