"""CACE-Net: shapes, each loss term against a re-implementation, the decision rule, the epoch switch, the
authors' state-dict through import-checkpoint, learning, and train -> evaluate -> localize.

The loss reference below is written in loops from the authors' training step (CACE/supv_main.py:195-245,
db43f60): event BCE on the event logits; cross-entropy of the video category (the largest event class
index over the segments, background counted as 0) for the category logits and for the top-4 class
activation score; BCE-with-logits of the audio-visual gate, which is already a probability; and, per
view i of the 2T views (T queries, then T noisy keys) of a video, -log(mean_{j positive} e^{s_ij/t} /
sum_{j != i} e^{s_ij/t}), where j is positive for an event segment's view when j is a view of an event
segment other than i itself, and for a background segment's view only when j is its own other view.
"""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.commands.import_checkpoint import import_checkpoint
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.extract.provenance import ExtractorConfig
from avepipe.localizer import Localizer
from avepipe.models import build_model, registry
from avepipe.models.cace import CACENet
from avepipe.models.checkpoint import load_checkpoint
from avepipe.models.outputs import ModelOutput
from avepipe.event.training import Trainer, defaults_for, predict_dataset
from avepipe.run.seeding import seed_everything
from tests._cace_reference import authors_cace_shapes, authors_cace_state, authors_forward
from tests._train_helpers import make_videos, tensor_splits, write_annotations, write_cache

C, BG = 28, 28


def _inputs(batch: int, steps: int, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, steps, 128, generator=generator, dtype=dtype),
            torch.rand(batch, steps, 7, 7, 512, generator=generator, dtype=dtype))


def _labels(steps: int) -> torch.Tensor:
    """Videos of one class each: all background, all event, and mixed runs."""
    rows = [[BG] * steps, [5] * steps, [BG if t % 3 == 0 else 11 for t in range(steps)],
            [27 if t < steps // 2 else BG for t in range(steps)]]
    return torch.tensor(rows)


def _net(seed: int = 0) -> CACENet:
    torch.manual_seed(seed)
    return build_model("cace").double().eval()


def reference_contrastive(query, key, is_event, temperature=0.01):
    terms = []
    for b in range(len(query)):
        views = torch.cat([query[b], key[b]])
        steps = len(query[b])
        for i in range(2 * steps):
            segment_i = i % steps
            positives, everything = [], []
            for j in range(2 * steps):
                if j == i:
                    continue
                value = torch.exp(views[i] @ views[j] / temperature)
                everything.append(value)
                segment_j = j % steps
                if (is_event[b, segment_i] and is_event[b, segment_j]) or segment_j == segment_i:
                    positives.append(value)
            terms.append(-torch.log(sum(positives) / len(positives) / sum(everything)))
    return sum(terms) / len(terms)


def reference_terms(out, labels, key):
    is_event = labels != BG
    category = torch.tensor([max([int(c) if c != BG else 0 for c in row]) for row in labels])
    event = torch.stack([F.softplus(-x) if y else F.softplus(x) for x, y in
                         zip(out.event_logits.flatten(), is_event.flatten())]).mean()
    gate_p = torch.sigmoid(out.extras["av_gate"].flatten())
    gate = torch.stack([-torch.log(p) if y else -torch.log(1 - p) for p, y in zip(gate_p, is_event.flatten())]).mean()

    def cross_entropy(logits):
        return torch.stack([torch.logsumexp(row, 0) - row[c] for row, c in zip(logits, category)]).mean()

    return {"event": event, "category": cross_entropy(out.category_logits), "gate": gate,
            "cas": cross_entropy(out.extras["cas_score"]),
            "contrastive": reference_contrastive(out.extras["query"], key, is_event)}


# -- shapes, loss, switch, decision rule ---------------------------------------------------------------------

@pytest.mark.parametrize("steps", [10, 3])
def test_output_and_explain_shapes(steps):
    net = _net()
    audio, visual = _inputs(2, steps)
    out = net(audio, visual)
    assert out.event_logits.shape == (2, steps) and out.category_logits.shape == (2, C)
    maps = net.explain(out)
    assert maps["audio_guided_spatial"].shape == maps["visual_self_spatial"].shape == (2, steps, 7, 7)
    assert maps["visual_guided_audio"].shape == (2, steps, steps)
    for value in maps.values():      # each map is a distribution over cells / segments
        assert torch.allclose(value.flatten(2).sum(-1), torch.ones(2, steps, dtype=torch.float64))
    probabilities = net.class_probabilities(net.segment_scores(out))
    assert probabilities.shape == (2, steps, C + 1)
    assert torch.allclose(probabilities.sum(-1), torch.ones(2, steps, dtype=torch.float64))


@pytest.mark.parametrize("steps", [10, 3])
@pytest.mark.parametrize("switch", [False, True])
def test_each_loss_term_equals_the_reference(steps, switch):
    net = _net().requires_grad_(False)
    net.start_epoch(net.contrastive_from if switch else net.contrastive_from - 1)
    audio, visual = _inputs(4, steps)
    labels = _labels(steps)
    out = net(audio, visual)
    torch.manual_seed(7)
    terms = net.compute_loss(out, labels, None)
    # the key: encoder_q of fused + 0.1 x noise drawn [T,B,D] (the authors' layout) from the same seed
    torch.manual_seed(7)
    noise = torch.randn(steps, 4, 256, dtype=torch.float64).transpose(0, 1)
    layer = net.localize_module.encoder_q[0]
    key = F.normalize(torch.relu(F.linear(out.fusion + 0.1 * noise, layer.weight, layer.bias)), dim=-1)
    expected = reference_terms(out, labels, key)
    for name, value in expected.items():
        assert abs(float(terms[name]) - float(value)) < 1e-9 * max(1.0, abs(float(value))), name
    total = sum(expected[n] for n in ("event", "category", "gate", "cas")) + (expected["contrastive"] if switch else 0)
    assert abs(float(terms["loss"]) - float(total)) < 1e-9
    assert float(expected["contrastive"]) > 0.1


def test_contrastive_term_stays_finite_in_float32_where_summing_exponentials_overflows():
    net = build_model("cace")
    net.start_epoch(net.contrastive_from)
    audio, visual = _inputs(4, 10, dtype=torch.float32)
    out = net(audio, visual)
    query = out.extras["query"].detach()
    assert math.isinf(float(torch.exp(query[0, 0] @ query[0, 0] / 0.01)))     # e^100 in float32
    terms = net.compute_loss(out, _labels(10), None)
    assert math.isfinite(float(terms["contrastive"].detach())) and math.isfinite(float(terms["loss"].detach()))


def test_switch_enhances_the_event_logit_from_its_epoch_and_predictions_ignore_the_noise():
    net = _net()
    audio, visual = _inputs(2, 10)
    net.start_epoch(net.contrastive_from - 1)
    plain = net(audio, visual)
    head = net.localize_module
    assert torch.allclose(plain.event_logits, head.classifier(plain.fusion).squeeze(-1))
    net.start_epoch(net.contrastive_from)
    enhanced = net(audio, visual)
    expected = head.classifier(enhanced.fusion + 0.6 * head.encoder_q(enhanced.fusion)).squeeze(-1)
    assert torch.allclose(enhanced.event_logits, expected)
    assert (enhanced.event_logits - plain.event_logits).abs().max() > 1e-3
    torch.manual_seed(1)
    first = net(audio, visual)
    torch.manual_seed(2)
    second = net(audio, visual)
    assert torch.equal(first.event_logits, second.event_logits)
    assert torch.equal(first.category_logits, second.category_logits)


def test_decision_rule_on_hand_set_logits():
    net = build_model("cace", num_classes=3).eval()
    out = ModelOutput(event_logits=torch.tensor([[2.0, -1.0, 0.1, -0.1]]), category_logits=torch.tensor([[0.1, 3.0, -1.0]]))
    labels, confidence = net.predict(out)
    assert labels.tolist() == [[1, 3, 1, 3]]
    event = torch.sigmoid(out.event_logits)
    category = F.softmax(out.category_logits, dim=-1).max(dim=-1).values[:, None]
    assert torch.allclose(confidence, torch.where(event > 0.5, event * category, 1 - event))


def test_recipe_options_and_rebuild():
    config = defaults_for("cace", "fully")
    assert (config.epochs, config.batch_size, config.lr, config.lr_milestones, config.lr_gamma,
            config.clip_grad_norm, config.weight_decay) == (200, 64, 7e-4, (10, 20, 30), 0.5, 0.5, 0.0)
    assert [config.lr_at(e) for e in (10, 11, 21, 31)] == [7e-4, 3.5e-4, 1.75e-4, 8.75e-5]
    net = build_model("cace", contrastive_from=3)
    assert net.config == {"model": "cace", "setting": "fully", "num_classes": 28, "contrastive_from": 3}
    rebuilt = registry.build(**net.config)
    assert type(rebuilt) is CACENet and rebuilt.config == net.config
    with pytest.raises(ValueError, match="cace has no 'weakly' setting"):
        build_model("cace", "weakly")


# -- the authors' state-dict ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("cace-import")
    state = authors_cace_state(seed=3)
    torch.save(state, root / "cace.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(root / "cace.pth.tar"), "--model", "cace", "--setting",
                                                    "fully", "-o", str(root / "ckpt")])
    assert result.exit_code == 0, result.output
    return root, state


def test_authors_key_table_has_their_unused_layers():
    shapes = authors_cace_shapes()
    assert len(shapes) == 242
    ours = build_model("cace").state_dict()
    unused = set(shapes) - set(ours)
    assert {"a_fc.weight", "spatial_channel_att.v_norm2.weight", "spatial_channel_att.ave_bottleneck.weight",
            "video_encoder.encoder_layer.linear1.weight",
            "audio_decoder.decoder.layers.0.self_attn.in_proj_weight"} <= unused
    assert all(shapes[k] == tuple(v.shape) for k, v in ours.items() if k != "contrastive_switch")


def test_imported_authors_file_reproduces_their_forward(imported):
    root, state = imported
    net, info = load_checkpoint(root / "ckpt")
    assert type(net) is CACENet and bool(net.contrastive_switch)    # as their --evaluate runs it
    assert info.model_config == {"model": "cace", "setting": "fully", "num_classes": 28, "contrastive_from": 26}
    audio, visual = _inputs(3, 10, seed=4)
    with torch.no_grad():
        expected = authors_forward(state, audio, visual, switch=True)
        out = net(audio.float(), visual.float())
    assert (out.event_logits - expected["is_event"]).abs().max() < 1e-4
    assert (out.category_logits - expected["event_scores"]).abs().max() < 1e-4
    for name in ("audio_guided_spatial", "visual_self_spatial", "visual_guided_audio"):
        assert (net.explain(out)[name] - expected[name]).abs().max() < 1e-5, name
    event = torch.sigmoid(expected["is_event"]) > 0.5
    authors_labels = torch.where(event, expected["event_scores"].argmax(-1)[:, None].expand(-1, 10), BG)
    assert torch.equal(net.predict(out)[0], authors_labels)


def test_import_names_a_missing_key_and_refuses_code(imported, tmp_path):
    state = dict(imported[1])
    del state["module.localize_module.classifier.weight"]
    torch.save(state, tmp_path / "broken.pth")
    result = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "broken.pth"), "--model", "cace",
                                       "--setting", "fully", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert (f"error: {tmp_path / 'broken.pth'}: missing key 'localize_module.classifier.weight' (expected shape "
            "(1, 256))") in result.output

    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    torch.save({"module.v_fc.weight": Payload()}, tmp_path / "code.pth")
    result = CliRunner().invoke(main, ["import-checkpoint", str(tmp_path / "code.pth"), "--model", "cace",
                                       "--setting", "fully", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "pickled code ran" not in result.output
    assert f"error: {tmp_path / 'code.pth'}: cannot be read as a weights-only PyTorch state-dict" in result.output


def test_import_as_weakly_supervised_is_refused_by_name(imported, tmp_path):
    """The authors have no weakly supervised script, and their weak_main_model cannot be built
    (``self.dual`` is read before it is set, main_model.py:320)."""
    path = imported[0] / "cace.pth.tar"
    result = CliRunner().invoke(main, ["import-checkpoint", str(path), "--model", "cace", "--setting", "weakly",
                                       "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"error: {path}: cace has no 'weakly' setting (it has: fully)" in result.output


# -- learning and the command line ---------------------------------------------------------------------------

def test_learns_the_synthetic_stand_in_well_above_the_majority_class(tmp_path):
    """32 training videos, 3 epochs of batches of 8, the contrastive term on from epoch 2 (the authors'
    lr 7e-4 and clipping 0.5): the last epoch's validation accuracy, none picked on it."""
    train_set, val_set = tensor_splits(32, 20, distractors=0.4)
    majority = float((val_set.segment_labels == 4).float().mean())
    seed_everything(0)
    config = defaults_for("cace", "fully", model_options={"contrastive_from": 2}, epochs=3, batch_size=8)
    net = build_model("cace", num_classes=4, contrastive_from=2)
    result = Trainer(net, config, train_set, val_set, tmp_path, ["a", "b", "c", "d", "background"],
                     ExtractorConfig(), device="cpu", progress=False).fit()
    assert result.history[-1]["val_acc"] >= majority + 0.25, (majority, result.history)
    assert result.history[-1]["train_contrastive"] < result.history[0]["train_contrastive"]


def test_cli_trains_evaluates_and_localizes_cace(tmp_path):
    names = [f"class {k}" for k in range(4)]
    audio, visual, segments, _ = make_videos(20, seed=0)
    ids = [f"vid{i:03d}" for i in range(20)]
    cache = write_cache(tmp_path / "features.h5", ids, audio, visual)
    annotations = write_annotations(tmp_path / "labels.csv", ids, segments, names)
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, [
        "train", str(cache), "--annotations", str(annotations), "--model", "cace", "--setting", "fully",
        "--contrastive-from", "2", "-o", str(run), "--epochs", "2", "--batch-size", "8", "--seed", "0",
        "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    history = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(history) == 2 and {"train_event", "train_gate", "train_cas", "train_contrastive"} <= set(history[0])

    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations",
                                          str(annotations), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    net, info = load_checkpoint(run / "best")
    assert type(net) is CACENet and info.model_config["contrastive_from"] == 2
    labels = load_annotations(annotations, classes=info.class_names)
    test_ids = load_official_splits(run / "splits", labels)["test"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], labels, test_ids))
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    assert report["segment_accuracy"] == pytest.approx(float((predicted == truth).mean()))

    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=10, device="cpu")
    result = localizer.localize_features(FeatureCache(cache).read(labels.source_id(test_ids[0])), explain=True)
    assert result.labels == [info.class_names[k] for k in predicted[0]]
    assert {name: value.shape for name, value in result.explain.items()} == {
        "audio_guided_spatial": (10, 7, 7), "visual_self_spatial": (10, 7, 7), "visual_guided_audio": (10, 10)}
