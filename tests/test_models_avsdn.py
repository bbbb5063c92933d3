"""AVSDN (Lin et al., ICASSP 2019) as the CPSP repository's avsdn.py computes it, with the CPSP framework's losses.

The reference (tests/_avel_reference.py ``ref_avsdn``) re-writes avsdn_net's forward in functional ops on a
state-dict with exactly its keys (``module.`` prefixed, as nn.DataParallel saves it). Losses from their
definitions: fully, BCE of the event logits against "segment is an event" plus the cross-entropy of the
category logits against the video's class (the largest class index among its segments, background counted
as 0: what fully_supv_main.py:245-247 derives); weakly, the multi-label soft margin loss of
softmax_c(max_t sigmoid(event_t) * category_c) against the video's event classes.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe import models
from avepipe.cli import main
from avepipe.commands.import_checkpoint import import_checkpoint
from avepipe.models import avsdn
from avepipe.models.checkpoint import load_checkpoint
from avepipe.event.training import defaults_for, predict_dataset
from tests._avel_reference import AVSDN_KEYS, authors_state, ref_avsdn, soft_margin
from tests._model_learning import CLASSES, fit_synthetic, majority_share, train_evaluate_localize
from tests._train_helpers import T

C, BG = 28, 28


def _inputs(batch: int, segments: int = T, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 128, generator=generator, dtype=dtype),
            torch.rand(batch, segments, 7, 7, 512, generator=generator, dtype=dtype))


def _our_keys_state(net) -> dict:
    """Our weights under the authors' keys (the inverse of the import mapping)."""
    renamed = {}
    for key, value in net.state_dict().items():
        key = key.replace("attention.", "").replace("event_head.", "event_classifier.0.")
        renamed[key.replace("category_head.", "category_classifier.0.")] = value
    assert set(renamed) == set(AVSDN_KEYS)
    return renamed


@pytest.mark.parametrize("segments", [10, 7])
@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_shapes_forward_and_build_round_trip(setting, segments):
    torch.manual_seed(0)
    net = models.build_model("avsdn", setting).double().eval()
    audio, visual = _inputs(3, segments)
    with torch.no_grad():
        out = net(audio, visual)
        event, category, fusion = ref_avsdn(audio, visual, _our_keys_state(net))
    assert out.event_logits.shape == (3, segments) and out.category_logits.shape == (3, C)
    assert (out.event_logits - event).abs().max() < 1e-10 and (out.category_logits - category).abs().max() < 1e-10
    assert (out.fusion - fusion).abs().max() < 1e-10
    assert net.explain(out)["attention"].shape == (3, segments, 7, 7)
    assert models.build_model(**net.config).config == net.config == {"model": "avsdn", "setting": setting,
                                                                     "num_classes": C}
    if setting == "weakly":
        pooled = torch.stack([torch.stack([(torch.sigmoid(event[b]) * category[b, c]).max() for c in range(C)])
                              for b in range(3)])
        assert (out.video_prob - F.softmax(pooled, dim=-1)).abs().max() < 1e-12


def test_fully_loss_equals_the_reference():
    torch.manual_seed(1)
    net = models.build_model("avsdn", "fully").double()
    segment_labels = torch.full((4, T), BG)
    segment_labels[0, 2:6] = 7
    segment_labels[1, :] = 3
    segment_labels[2, 4:5] = 20          # video 3: background only -> its class is 0
    with torch.no_grad():
        out = net(*_inputs(4))
        terms = net.compute_loss(out, segment_labels, torch.zeros(4, C + 1))
    is_event = (segment_labels != BG).double()
    event = -(is_event * F.logsigmoid(out.event_logits) + (1 - is_event) * F.logsigmoid(-out.event_logits)).mean()
    classes = [7, 3, 20, 0]
    category = torch.stack([-F.log_softmax(out.category_logits[b], dim=0)[c] for b, c in enumerate(classes)]).mean()
    assert abs(float(terms["event"] - event)) < 1e-12 and abs(float(terms["category"] - category)) < 1e-12
    assert abs(float(terms["loss"] - event - category)) < 1e-12


def test_weakly_loss_uses_the_video_label_without_background():
    torch.manual_seed(2)
    net = models.build_model("avsdn", "weakly").double()
    video = torch.zeros(3, C + 1, dtype=torch.float64)
    video[0, 4] = video[1, 9] = video[2, BG] = 1.0       # the third: a background-only video
    with torch.no_grad():
        out = net(*_inputs(3))
        terms = net.compute_loss(out, torch.full((3, T), -1), video)    # segment labels must not be read
    assert abs(float(terms["loss"] - soft_margin(out.video_prob, video[:, :C]))) < 1e-12


def test_recipe_is_the_cpsp_framework():
    fully, weakly = defaults_for("avsdn", "fully"), defaults_for("avsdn", "weakly")
    for config, milestones in ((fully, (10, 20, 30)), (weakly, (5, 20, 40))):
        assert (config.epochs, config.batch_size, config.lr, config.lr_milestones, config.lr_gamma,
                config.clip_grad_norm, config.lr_unit) == (45, 64, 1e-3, milestones, 0.5, 0.1, "epoch")


@pytest.mark.parametrize("setting", ["fully", "weakly"])
def test_authors_data_parallel_file_imports_and_reproduces_their_predictions(setting, tmp_path):
    state = authors_state(AVSDN_KEYS, seed=7, prefix="module.")
    torch.save(state, tmp_path / "model.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "model.pth.tar"), "--model", "avsdn",
                                                    "--setting", setting, "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    net, info = load_checkpoint(tmp_path / "ckpt")
    assert type(net) is (avsdn.WeaklyAVSDNNet if setting == "weakly" else avsdn.FullyAVSDNNet)
    plain = {k[len("module."):]: v for k, v in state.items()}
    audio, visual = _inputs(3, seed=5, dtype=torch.float32)
    with torch.no_grad():
        out = net(audio, visual)
        event, category, _ = ref_avsdn(audio, visual, plain)
    assert (out.event_logits - event).abs().max() < 1e-5 and (out.category_logits - category).abs().max() < 1e-5
    # their compute_accuracy_supervised: the category argmax where sigmoid(event) > 0.5, else 28
    theirs = torch.where(torch.sigmoid(event) > 0.5, category.argmax(dim=-1, keepdim=True), BG)
    assert torch.equal(net.predict(out)[0], theirs)


def test_a_file_without_the_fusion_block_is_named(tmp_path):
    torch.save({"L1.weight": torch.zeros(64, 512)}, tmp_path / "avel.pth")
    result = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "avel.pth"), "--model", "avsdn",
                                       "--setting", "fully", "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 2
    assert result.output == (f"error: {tmp_path / 'avel.pth'}: not an AVSDN state-dict (it has no 'U_v.0.weight' "
                             "or no 'lstm_a_v.weight_ih_l0')\n")


def test_fully_learns_the_synthetic_stand_in(tmp_path):
    """Measured 2026-12-02, seed 0: 0.938; the majority class 0.448."""
    _, val_set, accuracy = fit_synthetic("avsdn", "fully", tmp_path)
    assert accuracy >= majority_share(val_set) + 0.3, accuracy


def test_weakly_learns_the_video_category(tmp_path):
    """From video labels the category head learns each video's class; the event head gets no signal that
    tells background segments from event ones here (the max over t is all that reaches it), so it calls
    every segment an event: the event segments' accuracy is the measure (chance: 1 in 4 classes)."""
    net, val_set, _ = fit_synthetic("avsdn", "weakly", tmp_path, lr=3e-3, epochs=6, videos=(32, 16))
    predicted, _, truth = predict_dataset(net, val_set)
    events = truth != len(CLASSES) - 1
    assert (predicted[events] == truth[events]).mean() >= 0.9


def test_cli_trains_evaluates_and_localizes(tmp_path):
    config, net, result, _ = train_evaluate_localize(tmp_path, "avsdn", "fully", "--epochs", "2")
    assert config["clip_grad_norm"] == 0.1 and config["lr_milestones"] == [10, 20, 30]
    assert type(net) is avsdn.FullyAVSDNNet and result.explain["attention"].shape == (T, 7, 7)
