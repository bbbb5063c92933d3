"""CPSP's two losses by name, and the CPSP authors' state-dicts.

The released variant is checked against the released computation re-written here, in float64 and
loops, from its description (docs/cpsp.md): category = the video's class, 0 for an all-background
video; PSA_S = num_bg * -log(1e-12) / num_event per event video, averaged over those videos (a
constant); PSA_V = for every video, the farthest same-category video counting itself (at the
clamped distance sqrt(1e-12)), minus the mean of the 3 closest other-category videos (a missing one
counts 1e12 away), plus 0.2, clipped at 0, averaged over the whole batch; AVPS's target divides by
n + 1e-6.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avepipe import models
from avepipe.commands.import_checkpoint import ave_classes, import_checkpoint
from avepipe.data.annotations import load_annotations
from avepipe.data.ave_metadata import AVE_ANNOTATIONS, AVE_METADATA_DIR
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.errors import UserError
from avepipe.event.evaluation import EvaluateOptions, evaluate_checkpoint
from avepipe.extract.provenance import AVE_RELEASED
from avepipe.models.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from avepipe.event.training import TrainConfig, defaults_for, predict_dataset
from tests._authors_reference import authors_cpsp_state, ref_fully_encoder
from tests._train_helpers import write_cache

T, C, BG = 10, 28, 28
# (category or None for a background-only video, first event segment, event length) per video
BATCHES = {
    "every_video_has_an_event": [(3, 0, 4), (3, 2, 10 - 2), (5, 1, 3), (5, 0, 10), (7, 4, 5), (7, 6, 2),
                                 (9, 3, 3), (9, 0, 1)],
    "with_background_videos": [(3, 0, 4), (3, 2, 8), (None, 0, 0), (5, 1, 3), (5, 5, 5), (None, 0, 0),
                               (0, 2, 2), (0, 4, 6)],
    "class_seen_once": [(3, 0, 4), (3, 2, 8), (5, 1, 3), (5, 0, 10), (7, 4, 5), (11, 6, 2), (0, 3, 3),
                        (9, 0, 1)],
}


def _labels(plan):
    segment = torch.full((len(plan), T), BG, dtype=torch.long)
    video = torch.zeros(len(plan), C + 1)
    for b, (category, start, length) in enumerate(plan):
        if category is None:
            video[b, BG] = 1
        else:
            segment[b, start:start + length] = category
            video[b, category] = 1
    return segment, video


def _inputs(batch: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, T, 128, generator=generator, dtype=torch.float64),
            torch.rand(batch, T, 7, 7, 512, generator=generator, dtype=torch.float64))


def reference_released_terms(out, segment_labels) -> dict[str, torch.Tensor]:
    """The released computation, from its description, one video at a time."""
    B = segment_labels.shape[0]
    event_terms, category_terms, psa_s_terms, psa_v_terms, avps_terms = [], [], [], [], []
    categories = []
    for b in range(B):
        events = [int(c) for c in segment_labels[b] if c != BG]
        categories.append(max(events) if events else 0)
    embedding = [F.normalize(out.fusion[b], dim=-1).mean(dim=0) for b in range(B)]
    for b in range(B):
        is_event = [int(c != BG) for c in segment_labels[b]]
        n = sum(is_event)
        for t in range(T):
            x = out.event_logits[b, t]
            event_terms.append(is_event[t] * F.softplus(-x) + (1 - is_event[t]) * F.softplus(x))
            relu = F.relu(out.similarity[b])
            predicted = relu[t] / (relu.sum() + 1e-8)
            avps_terms.append((predicted - is_event[t] / (n + 1e-6)) ** 2)
        logits = out.category_logits[b]
        category_terms.append(torch.logsumexp(logits, dim=0) - logits[categories[b]])
        if n:
            psa_s_terms.append((T - n) * -math.log(1e-12) / n)
        distance = [torch.sqrt(torch.clamp(((embedding[b] - embedding[j]) ** 2).sum(), min=1e-12))
                    for j in range(B)]
        hardest_positive = max(distance[j] for j in range(B) if categories[j] == categories[b])
        negatives = sorted((distance[j] for j in range(B) if categories[j] != categories[b]), key=lambda d: float(d.detach()))[:3]
        negatives += [torch.tensor(1e12, dtype=torch.float64)] * (3 - len(negatives))
        psa_v_terms.append(F.relu(hardest_positive - sum(negatives) / 3 + 0.2))
    terms = {"event": torch.stack(event_terms).mean(), "category": torch.stack(category_terms).mean(),
             "avps": torch.stack(avps_terms).mean(), "psa_s": torch.tensor(sum(psa_s_terms) / len(psa_s_terms), dtype=torch.float64),
             "psa_v": torch.stack(psa_v_terms).mean()}
    terms["loss"] = (terms["event"] + terms["category"] + 100 * terms["avps"] + 0.01 * terms["psa_s"]
                     + terms["psa_v"])
    return terms


def _released_net(seed: int = 0):
    torch.manual_seed(seed)
    return models.build_model("cpsp", "fully", cpsp_loss="released").double().eval()


@pytest.mark.parametrize("batch", list(BATCHES))
def test_released_loss_terms_equal_the_released_computation(batch):
    net = _released_net()
    segment, video = _labels(BATCHES[batch])
    out = net(*_inputs(len(segment)))
    ours = net.compute_loss(out, segment, video)
    reference = reference_released_terms(out, segment)
    for name, value in reference.items():
        assert abs(float(ours[name].detach()) - float(value.detach())) < 1e-6, name


@pytest.mark.parametrize("batch", list(BATCHES))
def test_released_loss_moves_parameters_as_the_released_computation(batch):
    """Gradients and one step of the released optimiser (Adam lr 1e-3 after clipping to norm 0.1)."""
    ours, reference = _released_net(), _released_net()
    segment, video = _labels(BATCHES[batch])
    audio, visual = _inputs(len(segment))
    ours.compute_loss(ours(audio, visual), segment, video)["loss"].backward()
    reference_released_terms(reference(audio, visual), segment)["loss"].backward()
    for (name, p), q in zip(ours.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=1e-9), name
    for net in (ours, reference):
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        torch.optim.Adam(net.parameters(), lr=1e-3).step()
    for (name, p), q in zip(ours.named_parameters(), reference.parameters()):
        assert (p - q).abs().max() < 1e-5, name


def test_released_psa_s_is_a_constant_without_gradient_and_the_corrected_one_is_not():
    segment, _ = _labels(BATCHES["with_background_videos"])
    is_event = segment != BG
    fusion = torch.randn(len(segment), T, 256, dtype=torch.float64, requires_grad=True)
    released = models.losses.released_psa_segment_loss(fusion, is_event)
    (released_grad,) = torch.autograd.grad(released, fusion)
    corrected = models.losses.psa_segment_loss(fusion, is_event)
    (corrected_grad,) = torch.autograd.grad(corrected, fusion)
    assert released_grad.norm() < 1e-12 and corrected_grad.norm() > 1e-4     # measured: 1e-15 vs 1.7e-3
    shifted = models.losses.released_psa_segment_loss(torch.randn_like(fusion), is_event)
    assert abs(float(released.detach()) - float(shifted)) < 1e-9 and float(shifted) > 20


def test_corrected_variant_is_one_option_away_and_differs():
    torch.manual_seed(0)
    net = models.build_model("cpsp", "fully", cpsp_loss="corrected").double().eval()
    segment, video = _labels(BATCHES["with_background_videos"])
    out = net(*_inputs(len(segment)))
    corrected = net.compute_loss(out, segment, video)
    released = reference_released_terms(out, segment)
    assert net.config["cpsp_loss"] == "corrected"
    assert corrected["psa_s"] < 1.0 < released["psa_s"]
    assert abs(float((corrected["category"] - released["category"]).detach())) > 1e-3   # background videos: no class


def test_released_initialisation_uses_pytorch_defaults_for_fa_fv_and_heads():
    """PyTorch's default Linear init draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Xavier's bound for fa.0
    (128 -> 256) is sqrt(6/384) = 0.125 > 1/sqrt(128) = 0.088, for the event head sqrt(6/257) = 0.153."""
    torch.manual_seed(0)
    released = models.build_model("cpsp", "fully")
    corrected = models.build_model("cpsp", "fully", cpsp_loss="corrected")
    default_bound, xavier_bound = 1 / math.sqrt(128), math.sqrt(6 / (128 + 256))
    assert released.fa[0].weight.abs().max() <= default_bound < corrected.fa[0].weight.abs().max() <= xavier_bound
    assert released.event_head.bias.abs().max() > 0 and torch.all(corrected.event_head.bias == 0)
    assert released.config["cpsp_loss"] == "released"
    with pytest.raises(ValueError, match="unknown CPSP loss 'intended'"):
        models.build_model("cpsp", "fully", cpsp_loss="intended")
    with pytest.raises(ValueError, match="cpsp_loss does not apply to model 'psp'"):
        models.build_model("psp", "fully", cpsp_loss="released")


def test_checkpoints_and_runs_record_the_loss_and_old_ones_mean_corrected(tmp_path):
    net = models.build_model("cpsp", "fully", cpsp_loss="corrected")
    save_checkpoint(tmp_path, net, ave_classes() + ["background"], AVE_RELEASED)
    assert load_checkpoint(tmp_path)[0].loss == "corrected"
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    del config["model"]["cpsp_loss"]                                  # written before the field existed
    config_path.write_text(json.dumps(config))
    assert read_checkpoint_info(tmp_path).model_config["cpsp_loss"] == "corrected"
    assert models.build_model("cpsp", "fully").loss == "released"
    run = defaults_for("cpsp", "fully", model_options={"cpsp_loss": "released"}).to_json()
    assert run["cpsp_loss"] == "released"                             # flat, as runs have always been written
    old_run = {k: v for k, v in run.items() if k != "cpsp_loss"}
    assert TrainConfig.from_json(old_run).model_options["cpsp_loss"] == "corrected"
    assert "cpsp_loss" not in TrainConfig.from_json(defaults_for("psp", "fully").to_json()).model_options
    with pytest.raises(UserError, match="the option cpsp_loss applies to cpsp only, not 'psp'"):
        defaults_for("psp", "fully", model_options={"cpsp_loss": "corrected"})


# -- the CPSP authors' state-dicts ------------------------------------------------------------------

def authors_cpsp_predictions(audio, video, sd, tau=0.099):
    """Their forward and decision rule: category if sigmoid(event logit) > 0.5, else background (28)."""
    fusion, _, _ = ref_fully_encoder(audio, video, sd, tau)
    event = F.linear(fusion, sd["event_classifier.0.weight"], sd["event_classifier.0.bias"]).squeeze(-1)
    category = F.linear(fusion.mean(dim=1), sd["category_classifier.0.weight"], sd["category_classifier.0.bias"])
    labels = torch.where(event.sigmoid() > 0.5, category.argmax(dim=-1, keepdim=True), torch.full_like(event, BG,
                                                                                                     dtype=torch.long))
    return labels, event


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The authors' CPSP file imported by the CLI, and a cache of the first 6 official AVE test videos.

    The event bias puts the threshold in the widest gap between the middle third of the event scores
    on these inputs, so both decisions occur and none is a rounding away from 0.5."""
    root = tmp_path_factory.mktemp("cpsp-import")
    annotations = load_annotations(AVE_ANNOTATIONS)
    ids = load_official_splits(AVE_METADATA_DIR, annotations)["test"][:6]
    rng = np.random.default_rng(3)
    audio = rng.normal(0, 1, (len(ids), T, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, 1, (len(ids), T, 7, 7, 512))).astype(np.float32)
    cache = write_cache(root / "ave_test.h5", [annotations.source_id(v) for v in ids], audio, visual,
                        config=AVE_RELEASED)
    audio, visual = torch.from_numpy(audio), torch.from_numpy(visual)
    state = authors_cpsp_state()
    with torch.no_grad():
        fusion, _, _ = ref_fully_encoder(audio, visual, state, 0.099)
        scores = (fusion @ state["event_classifier.0.weight"].T).flatten().sort().values
        third = len(scores) // 3
        k = third + int((scores[third + 1:2 * third + 1] - scores[third:2 * third]).argmax())
        state["event_classifier.0.bias"] = -((scores[k] + scores[k + 1]) / 2).reshape(1)
    torch.save(state, root / "cpsp.pth.tar")
    result = CliRunner().invoke(import_checkpoint, [str(root / "cpsp.pth.tar"), "--model", "cpsp", "--setting",
                                                    "fully", "-o", str(root / "ckpt")])
    assert result.exit_code == 0, result.output
    return root, state, annotations, ids, cache, audio, visual


def test_authors_cpsp_file_imports_and_reproduces_their_predictions_on_a_cache(imported):
    root, state, annotations, ids, cache, audio, visual = imported
    net, info = load_checkpoint(root / "ckpt")
    assert info.model_config == {"model": "cpsp", "setting": "fully", "tau": 0.099, "num_classes": 28,
                                 "cpsp_loss": "released"}
    assert info.class_names == ave_classes() + ["background"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], annotations, ids))
    with torch.no_grad():
        expected, event = authors_cpsp_predictions(audio, visual, state)
        ours = net(audio, visual)
    assert (ours.event_logits - event).abs().max() < 1e-5 < event.abs().min()
    assert np.array_equal(predicted, expected.numpy())
    assert 0 < (expected != BG).sum() < expected.numel()                 # both decisions occur
    report = evaluate_checkpoint(EvaluateOptions(root / "ckpt", (cache,), AVE_ANNOTATIONS, splits_dir=AVE_METADATA_DIR,
                                                 limit=6))
    assert report.segment_accuracy == pytest.approx(float((expected.numpy() == truth).mean()))


def test_cpsp_file_given_as_psp_is_refused(imported, tmp_path):
    root = imported[0]
    as_psp = CliRunner().invoke(import_checkpoint, [str(root / "cpsp.pth.tar"), "--setting", "fully", "-o",
                                                    str(tmp_path / "a")])
    assert as_psp.exit_code == 2 and "Traceback" not in as_psp.output
    assert "cpsp.pth.tar: holds a CPSP network (it has 'event_classifier.0.weight'); import it as CPSP " \
           "(--model cpsp)" in as_psp.output


def test_cpsp_import_names_a_missing_head(imported, tmp_path):
    state = dict(imported[1])
    del state["category_classifier.0.bias"]
    torch.save(state, tmp_path / "broken.pth")
    result = CliRunner().invoke(import_checkpoint, [str(tmp_path / "broken.pth"), "--model", "cpsp", "--setting",
                                                    "fully", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "missing key 'category_head.bias' (expected shape (28,))" in result.output
