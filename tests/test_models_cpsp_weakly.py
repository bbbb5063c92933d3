"""Weakly supervised CPSP: its loss by name, its decision rule, training through the CLI, the authors' files.

The reference below re-writes, in float64 and loops, the weak CPSP computation from its description
(docs/cpsp.md): the video prediction is softmax_c(max_t sigmoid(event logit_t) * category logit_c); the
loss is the multi-label soft margin loss of those probabilities against the video's event classes (the
video label without its background column), plus PSA_V with margin 0.6 and 4 negatives. Released PSA_V:
the video's class is its first event class, 0 without one; a video is its own positive (at the clamped
distance sqrt(1e-12)); a missing negative counts 1e12 away; mean over the whole batch. Corrected PSA_V:
videos without an event do not take part, the hardest positive is another video of the class, videos
without a positive or a negative are skipped.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe import models
from avepipe.cli import main
from avepipe.commands.import_checkpoint import ave_classes, import_checkpoint
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.localizer import Localizer
from avepipe.models.checkpoint import load_checkpoint, save_checkpoint
from avepipe.models import psp_cpsp
from avepipe.extract.provenance import AVE_RELEASED
from avepipe.models.outputs import ModelOutput
from avepipe.training import defaults_for, predict_dataset
from tests._authors_reference import authors_cpsp_state, ref_fully_encoder
from tests._train_helpers import T, make_videos, write_cache

C, BG = 28, 28
MARGIN, NEGATIVES = 0.6, 4
# event class of each video of a batch; None = a background-only video (weakly AVE's extra videos)
BATCHES = {
    "mixed_classes": [3, 3, 5, 5, 7, 7, 9, 11],
    "one_class_repeated": [3, 3, 3, 3, 3, 3, 5, 7],
    "with_background_videos": [3, 3, None, 5, 5, None, 0, 7],
}


def _video_labels(classes) -> torch.Tensor:
    labels = torch.zeros(len(classes), C + 1, dtype=torch.float64)
    for b, c in enumerate(classes):
        labels[b, BG if c is None else c] = 1
    return labels


def _inputs(batch: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, T, 128, generator=generator, dtype=torch.float64),
            torch.rand(batch, T, 7, 7, 512, generator=generator, dtype=torch.float64))


def reference_video_prob(event_logits, category_logits):
    rows = []
    for b in range(len(event_logits)):
        pooled = [max(torch.sigmoid(event_logits[b, t]) * category_logits[b, c] for t in range(event_logits.shape[1]))
                  for c in range(category_logits.shape[1])]
        rows.append(torch.softmax(torch.stack(pooled), dim=0))
    return torch.stack(rows)


def reference_psa_v(fusion, classes, released: bool):
    embedding = [F.normalize(f, dim=-1).mean(dim=0) for f in fusion]

    def distance(i, j):
        return torch.sqrt(torch.clamp(((embedding[i] - embedding[j]) ** 2).sum(), min=1e-12))

    if released:
        classes = [0 if c is None else c for c in classes]
    terms = []
    for i, c in enumerate(classes):
        if c is None:
            continue
        positives = [distance(i, j) for j, d in enumerate(classes) if d == c and (released or j != i)]
        negatives = sorted((distance(i, j) for j, d in enumerate(classes) if d is not None and d != c),
                           key=lambda x: float(x.detach()))[:NEGATIVES]
        if released:
            negatives += [torch.tensor(1e12, dtype=torch.float64)] * (NEGATIVES - len(negatives))
        elif not (positives and negatives):
            continue
        terms.append(F.relu(max(positives, key=lambda x: float(x.detach())) - sum(negatives) / len(negatives) + MARGIN))
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


def reference_terms(out, classes, released: bool) -> dict[str, torch.Tensor]:
    target = _video_labels(classes)[:, :C]
    probs = reference_video_prob(out.event_logits, out.category_logits)
    video = torch.stack([(target[b] * F.softplus(-probs[b]) + (1 - target[b]) * F.softplus(probs[b])).mean()
                         for b in range(len(classes))]).mean()
    psa_v = reference_psa_v(out.fusion, classes, released)
    return {"video": video, "psa_v": psa_v, "loss": video + psa_v}


def _net(loss: str, seed: int = 0):
    torch.manual_seed(seed)
    return models.build_model("cpsp", "weakly", cpsp_loss=loss).double().eval()


@pytest.mark.parametrize("loss", ["released", "corrected"])
@pytest.mark.parametrize("batch", list(BATCHES))
def test_weak_loss_and_its_gradients_equal_the_reference(batch, loss):
    ours, reference = _net(loss), _net(loss)
    classes = BATCHES[batch]
    audio, visual = _inputs(len(classes))
    segment_labels = torch.full((len(classes), T), BG)      # not used by a weakly supervised loss
    out = ours(audio, visual)
    terms = ours.compute_loss(out, segment_labels, _video_labels(classes))
    expected_prob = reference_video_prob(out.event_logits, out.category_logits)
    assert (out.video_prob - expected_prob).abs().max() < 1e-12
    reference_out = reference(audio, visual)
    expected = reference_terms(reference_out, classes, released=loss == "released")
    for name, value in expected.items():
        assert abs(float(terms[name].detach()) - float(value.detach())) < 1e-9, name
    assert float(terms["psa_v"].detach()) > 0.01
    terms["loss"].backward()
    expected["loss"].backward()
    for (name, p), q in zip(ours.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=1e-12), name
    for head in (ours.event_head, ours.category_head):
        assert head.weight.grad.abs().max() > 1e-6 and head.bias.grad.abs().max() > 1e-8


def test_background_videos_are_class_0_in_released_psa_v_and_left_out_when_corrected():
    fusion = torch.randn(len(BATCHES["with_background_videos"]), T, 256, dtype=torch.float64)
    classes = BATCHES["with_background_videos"]
    target = _video_labels(classes)[:, :C]
    released = models.losses.released_psa_video_loss(fusion, target.argmax(dim=1), MARGIN, NEGATIVES)
    as_class_0 = reference_psa_v(fusion, [0 if c is None else c for c in classes], released=True)
    left_out = models.losses.psa_video_loss(fusion, models.losses.video_categories(target), MARGIN, NEGATIVES)
    assert abs(float(released - as_class_0)) < 1e-12
    assert abs(float(left_out - reference_psa_v(fusion, classes, released=False))) < 1e-12
    assert abs(float(released - left_out)) > 1e-3


def test_segments_follow_the_event_and_category_rule_on_hand_set_logits():
    net = models.build_model("cpsp", "weakly", num_classes=3).eval()
    out = ModelOutput(event_logits=torch.tensor([[2.0, -1.0, 0.1, -0.1], [0.5, 0.5, -3.0, 3.0]]),
                      category_logits=torch.tensor([[0.1, 3.0, -1.0], [2.0, -2.0, 2.5]]))
    labels, confidence = net.predict(out)
    assert labels.tolist() == [[1, 3, 1, 3], [2, 2, 3, 2]]
    event = torch.sigmoid(out.event_logits)
    category = F.softmax(out.category_logits, dim=-1).max(dim=-1).values[:, None]
    assert torch.allclose(confidence, torch.where(event > 0.5, event * category, 1 - event))


def test_published_schedule_and_checkpoint_round_trip(tmp_path):
    config = defaults_for("cpsp", "weakly")
    assert (config.epochs, config.batch_size, config.lr, config.lr_milestones, config.lr_gamma,
            config.clip_grad_norm) == (45, 64, 1e-3, (5, 20, 40), 0.5, 0.1)
    assert models.build_model("cpsp", "weakly").options() == {"tau": 0.095, "cpsp_loss": "released"}
    assert [config.lr_at(e) for e in (5, 6, 20, 21, 40, 41)] == [1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4]
    for loss in ("released", "corrected"):
        net = models.build_model("cpsp", "weakly", cpsp_loss=loss).eval()
        save_checkpoint(tmp_path / loss, net, ave_classes() + ["background"], AVE_RELEASED)
        loaded, info = load_checkpoint(tmp_path / loss)
        assert type(loaded) is type(net) and loaded.config == net.config == info.model_config == {
            "model": "cpsp", "setting": "weakly", "tau": 0.095, "num_classes": 28, "cpsp_loss": loss}
        audio, visual = (x.float() for x in _inputs(3))
        with torch.no_grad():
            before, after = net(audio, visual), loaded(audio, visual)
        for field in ("event_logits", "category_logits", "video_prob"):
            assert torch.equal(getattr(before, field), getattr(after, field)), field


# -- training through the CLI -------------------------------------------------------------------------------

def _write_annotations(path, ids, segment_labels, class_names):
    """A CSV with one event row per video (its run of event segments) or an empty row (background only)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "start", "end", "label"])
        for vid, labels in zip(ids, segment_labels):
            events = np.flatnonzero(labels != len(class_names))
            writer.writerow([vid, events[0], events[-1] + 1, class_names[labels[events[0]]]] if len(events)
                            else [vid, "", "", ""])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 generated classes, 60 labelled videos and a background cache of 8 background-only videos."""
    root = tmp_path_factory.mktemp("weak-cpsp")
    names = [f"class {k}" for k in range(4)]
    audio, visual, segments, _ = make_videos(60, seed=0)
    ids = [f"vid{i:03d}" for i in range(60)]
    cache = write_cache(root / "features.h5", ids, audio, visual)
    annotations = _write_annotations(root / "labels.csv", ids, segments, names)
    bg_audio, bg_visual, _, _ = make_videos(8, seed=1, background_share=1.0)
    background = write_cache(root / "background.h5", [f"bg{i}" for i in range(8)], bg_audio, bg_visual)
    run = root / "run"
    result = CliRunner().invoke(main, [
        "train", str(cache), "--annotations", str(annotations), "--model", "cpsp", "--setting", "weakly",
        "--background-cache", str(background), "-o", str(run), "--epochs", "4", "--batch-size", "8",
        "--seed", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root, cache, annotations, run


def test_cli_trains_evaluates_and_localizes_weakly_cpsp(trained, tmp_path):
    root, cache, annotations, run = trained
    history = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(history) == 4 and {"train_video", "train_psa_v"} <= set(history[0])
    assert float(history[-1]["train_video"]) < float(history[0]["train_video"])
    state = json.loads((run / "last" / "training_state.json").read_text())
    assert state["train_config"]["lr_milestones"] == [5, 20, 40] and state["train_config"]["cpsp_loss"] == "released"

    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations",
                                          str(annotations), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    net, info = load_checkpoint(run / "best")
    assert info.model_config["setting"] == "weakly" and type(net) is psp_cpsp.WeaklyCPSPNet
    labels = load_annotations(annotations, classes=info.class_names)
    test_ids = load_official_splits(run / "splits", labels)["test"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], labels, test_ids))
    assert report["videos"] == len(test_ids) == 6
    assert report["segment_accuracy"] == pytest.approx(float((predicted == truth).mean()))

    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=T, device="cpu")
    result = localizer.localize_features(FeatureCache(cache).read(labels.source_id(test_ids[0])))
    assert result.labels == [info.class_names[k] for k in predicted[0]]


def test_authors_weakly_cpsp_file_imports_and_reproduces_their_forward(tmp_path):
    """Their weakly_psp_net (flag 'cpsp', VGG features) has the keys of their fully supervised net; the
    unused linear_v, v_classify, a_classify, L1 and L2 are ignored."""
    state = authors_cpsp_state(seed=5)
    torch.save(state, tmp_path / "weak.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "weak.pth.tar"), "--model", "cpsp", "--setting",
                                                    "weakly", "-o", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    net, info = load_checkpoint(tmp_path / "ckpt")
    assert type(net) is psp_cpsp.WeaklyCPSPNet and info.model_config == {
        "model": "cpsp", "setting": "weakly", "tau": 0.095, "num_classes": 28, "cpsp_loss": "released"}
    audio, visual = (x.float() for x in _inputs(2, seed=4))
    with torch.no_grad():
        fusion, _, _ = ref_fully_encoder(audio, visual, state, 0.095)
        event = F.linear(fusion, state["event_classifier.0.weight"], state["event_classifier.0.bias"]).squeeze(-1)
        category = F.linear(fusion.mean(dim=1), state["category_classifier.0.weight"],
                            state["category_classifier.0.bias"])
        out = net(audio, visual)
    assert (out.event_logits - event).abs().max() < 1e-5 and (out.category_logits - category).abs().max() < 1e-5
    assert (out.video_prob - reference_video_prob(event, category)).abs().max() < 1e-6
