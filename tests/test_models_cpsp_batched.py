"""The corrected CPSP losses, computed for the whole batch at once, equal their per-video definitions.

The references below are the definitions written as loops over videos (one video, one
anchor at a time), the way the losses were computed before they were batched for GPUs.
Values and gradients must agree on random batches that include the edge cases: videos
without events or without background, batches without a usable video, rows with fewer
negatives than asked for.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from avepipe.models import losses


def _segment_reference(fusion, is_event, temperature=0.6):
    features = F.normalize(fusion, dim=-1)
    per_video = []
    for video, events in zip(features, is_event.bool()):
        if not events.any():
            continue
        terms = []
        for i in events.nonzero().flatten().tolist():
            similarity = torch.exp(video[i] @ video.T / temperature)
            positive = similarity[events].sum()
            negative = similarity[~events].mean() if (~events).any() else torch.zeros(())
            terms.append(-torch.log(positive / (positive + negative)))
        per_video.append(torch.stack(terms).mean())
    return torch.stack(per_video).mean() if per_video else fusion.sum() * 0.0


def _video_reference(fusion, categories, margin=0.2, negatives=3):
    embeddings = F.normalize(fusion, dim=-1).mean(dim=1)
    terms = []
    for i in range(len(categories)):
        if categories[i] < 0:
            continue
        positives = [j for j in range(len(categories)) if j != i and categories[j] == categories[i]]
        others = [j for j in range(len(categories)) if categories[j] >= 0 and categories[j] != categories[i]]
        if not positives or not others:
            continue
        distance = [torch.linalg.vector_norm(embeddings[i] - embeddings[j]) for j in range(len(categories))]
        hardest = torch.stack([distance[j] for j in positives]).max()
        closest = sorted((distance[j] for j in others), key=lambda d: float(d.detach()))[:negatives]
        terms.append(F.relu(hardest - torch.stack(closest).mean() + margin))
    return torch.stack(terms).mean() if terms else fusion.sum() * 0.0


def _both(loss, reference, fusion, *args):
    ours_in = fusion.clone().requires_grad_()
    theirs_in = fusion.clone().requires_grad_()
    ours, theirs = loss(ours_in, *args), reference(theirs_in, *args)
    ours.backward()
    theirs.backward()
    return ours, theirs, ours_in.grad, theirs_in.grad


@pytest.mark.parametrize("seed", range(6))
def test_segment_loss_equals_its_per_video_definition(seed):
    generator = torch.Generator().manual_seed(seed)
    fusion = torch.randn(7, 10, 16, generator=generator)
    is_event = torch.rand(7, 10, generator=generator) < 0.6
    is_event[0] = False    # no event: skipped
    is_event[1] = True     # no background: negative term 0
    ours, theirs, grad, reference_grad = _both(losses.psa_segment_loss, _segment_reference, fusion, is_event)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", range(6))
def test_video_loss_equals_its_per_video_definition(seed):
    generator = torch.Generator().manual_seed(seed)
    fusion = torch.randn(12, 10, 16, generator=generator)
    categories = torch.randint(-1, 4, (12,), generator=generator)
    categories[:2] = 5    # a category with exactly one positive pair
    for negatives in (1, 3, 20):    # 20: more than any row has
        ours, theirs, grad, reference_grad = _both(losses.psa_video_loss, _video_reference, fusion, categories,
                                                   0.2, negatives)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
        torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-7)


def test_batches_without_a_usable_video_give_zero_and_finite_gradients():
    fusion = torch.randn(3, 10, 16)
    no_events = torch.zeros(3, 10, dtype=torch.bool)
    one_category = torch.tensor([2, 2, -1])    # positives but no negative
    for loss, argument in ((losses.psa_segment_loss, no_events), (losses.psa_video_loss, one_category)):
        leaf = fusion.clone().requires_grad_()
        value = loss(leaf, argument)
        value.backward()
        assert value.item() == 0.0
        assert torch.isfinite(leaf.grad).all() and not leaf.grad.any()
