"""Training objectives of PSP and CPSP, as functions of plain tensors (testable by hand).

Conventions: background is the last class index; ``is_event`` is a bool mask [B,T].
Every loss whose terms can all be skipped returns a zero that is still attached
to the graph, so a batch without usable pairs never yields NaN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-8


def _zero_like_graph(x: Tensor) -> Tensor:
    return x.sum() * 0.0


def segment_cross_entropy(logits: Tensor, segment_labels: Tensor) -> Tensor:
    """Mean cross-entropy over all (video, segment) pairs; logits [B,T,K], labels [B,T]."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), segment_labels.reshape(-1))


def avps_target(is_event: Tensor, count_eps: float = 0.0) -> Tensor:
    """G_t = 1/n on the n event segments of each video, 0 elsewhere (all zero without events).

    ``count_eps`` > 0 divides by n + count_eps instead, as the CPSP authors' script does (1e-6).
    """
    is_event = is_event.float()
    count = is_event.sum(dim=1, keepdim=True)
    return is_event / (count + count_eps if count_eps else count.clamp_min(1.0))


def avps_loss(similarity: Tensor, is_event: Tensor, count_eps: float = 0.0) -> Tensor:
    """AVPS = MSE(ReLU(s) / (sum_t ReLU(s) + 1e-8), G), mean over all B*T entries."""
    positive = F.relu(similarity)
    predicted = positive / (positive.sum(dim=1, keepdim=True) + EPS)
    return F.mse_loss(predicted, avps_target(is_event, count_eps).to(predicted.dtype))


def weak_video_target(segment_labels: Tensor, num_outputs: int) -> Tensor:
    """The weakly supervised video label: mean over t of the one-hot segment labels [B,C+1]."""
    return F.one_hot(segment_labels, num_outputs).float().mean(dim=1)


def weak_bce_loss(video_prob: Tensor, target: Tensor) -> Tensor:
    """BCE between the video prediction (probabilities, softmax(mean_t score)) and the video label."""
    return F.binary_cross_entropy(video_prob.clamp(EPS, 1.0 - EPS), target)


def psa_segment_loss(fusion: Tensor, is_event: Tensor, temperature: float = 0.6) -> Tensor:
    """PSA_S: within each video, pull event segments together and away from its background.

    loss_i = -log(sum_pos e^{S/tmp} / (sum_pos e^{S/tmp} + mean_neg e^{S/tmp})) for event segment i,
    positives = all event segments (i included), negatives = background segments (a video without
    background gives loss 0); averaged over event segments, then over videos that have an event.
    """
    # Whole-batch masked sums, not a loop with .any() and boolean indexing: no host sync on a GPU.
    features = F.normalize(fusion, dim=-1)
    exp_sim = torch.exp(torch.bmm(features, features.transpose(1, 2)) / temperature)   # [B,T,T]
    events = is_event.bool()
    event = events.to(exp_sim.dtype)
    background = 1 - event
    positive = (exp_sim * event[:, None, :]).sum(dim=2)                               # [B,T] per anchor
    negative = (exp_sim * background[:, None, :]).sum(dim=2) / background.sum(dim=1, keepdim=True).clamp(min=1)
    positive = torch.where(events, positive, torch.ones_like(positive))   # background anchors: unused, kept finite
    anchor_loss = -torch.log(positive / (positive + negative)) * event
    counts = event.sum(dim=1)
    has_event = (counts > 0).to(exp_sim.dtype)
    per_video = anchor_loss.sum(dim=1) / counts.clamp(min=1)
    return (per_video * has_event).sum() / has_event.sum().clamp(min=1)   # 0 (with a graph) without events


def video_categories(event_classes: Tensor) -> Tensor:
    """[B] long: each video's event class from its multi-hot event-class label [B,C] (the lowest index
    if it has several), -1 for a video without an event."""
    return torch.where(event_classes.sum(dim=1) > 0, event_classes.argmax(dim=1),
                       torch.full(event_classes.shape[:1], -1, dtype=torch.long, device=event_classes.device))


def psa_video_loss(fusion: Tensor, categories: Tensor, margin: float = 0.2, negatives: int = 3) -> Tensor:
    """PSA_V: margin ranking between the hardest positive and the mean of the closest ``negatives``
    negatives (fully supervised CPSP: margin 0.2, 3 negatives; weakly: 0.6, 4).

    fusion [B,T,D] is L2-normalised per segment and averaged over t; distances are Euclidean.
    categories [B] long, -1 for videos without an event (excluded). Videos lacking a positive
    or a negative in the batch are skipped.
    """
    embeddings = F.normalize(fusion, dim=-1).mean(dim=1)
    distances = torch.cdist(embeddings, embeddings)
    valid = categories >= 0
    same = (categories[:, None] == categories[None, :]) & valid[:, None] & valid[None, :]
    same.fill_diagonal_(False)
    other = (categories[:, None] != categories[None, :]) & valid[:, None] & valid[None, :]
    usable = same.any(dim=1) & other.any(dim=1)
    # Per row at once: the hardest positive, and the mean of the closest min(negatives, #negatives) negatives.
    hardest_positive = torch.where(usable, distances.masked_fill(~same, float("-inf")).amax(dim=1), 0)
    closest = distances.masked_fill(~other, float("inf")).topk(min(negatives, len(categories)), dim=1,
                                                                largest=False).values      # ascending
    taken = other.sum(dim=1).clamp(max=negatives)
    kept = torch.arange(closest.shape[1], device=closest.device)[None, :] < taken[:, None]
    mean_closest = torch.where(kept, closest, 0).sum(dim=1) / taken.clamp(min=1)
    terms = torch.where(usable, F.relu(hardest_positive - mean_closest + margin), 0)
    return terms.sum() / usable.sum().clamp(min=1)   # 0 (with a graph) when no video is usable


# -- CPSP as the authors' released code computes it (docs/cpsp.md: formulas and differences) ----------
RELEASED_EPS = 1e-12       # the released PSA terms' guard; -log(RELEASED_EPS) ~ 27.63
RELEASED_FAR = 1e12        # the released PSA_V's stand-in distance for "not a candidate"


def released_categories(segment_labels: Tensor, background: int) -> Tensor:
    """The released video category: the largest class index over the segments, background counted
    as class 0, so an all-background video is labelled class 0."""
    return torch.where(segment_labels == background, torch.zeros_like(segment_labels), segment_labels).amax(dim=1)


def released_psa_segment_loss(fusion: Tensor, is_event: Tensor, temperature: float = 0.6) -> Tensor:
    """PSA_S as released: the anchor-by-column exp-similarity tables are summed over the ANCHOR axis.

    Column j then holds e_j * sum_{i event} e^{S_ij/tmp} as "positives" and (1 - e_j) * (the same sum)
    / num_bg as "negatives": an event column gives -log(~1) ~ 0, a background column -log(1e-12).
    The term is num_bg * 27.63 / num_event per event video, a constant without gradient. A batch
    without any event video gives 0 (the released code divides 0 by 0 there).
    """
    features = F.normalize(fusion, dim=-1)
    event = is_event.to(fusion.dtype)                                                # [B,T]
    anchor = event[:, :, None]                                                      # rows i
    pos_mask = anchor * event[:, None, :]                                           # [B,T,T]
    neg_mask = anchor * (1 - event[:, None, :])
    similarity = torch.bmm(features, features.transpose(1, 2))
    exp_pos = torch.exp(similarity * pos_mask / temperature) * pos_mask
    exp_neg = torch.exp(similarity * neg_mask / temperature) * neg_mask
    num_event = event.sum(dim=1)
    num_bg = event.shape[1] - num_event
    positive = exp_pos.sum(dim=1)                                                   # over anchors, [B,T]
    negative = exp_neg.sum(dim=1) / (num_bg[:, None] + RELEASED_EPS)
    ratio = positive / (positive + negative + RELEASED_EPS)
    per_video = -torch.log(ratio + RELEASED_EPS).sum(dim=1) / (num_event + RELEASED_EPS)
    has_event = (num_event != 0).to(fusion.dtype)
    if not has_event.any():
        return _zero_like_graph(fusion)
    return (per_video * has_event).sum() / has_event.sum()


def released_psa_video_loss(fusion: Tensor, categories: Tensor, margin: float = 0.2, negatives: int = 3) -> Tensor:
    """PSA_V as released: a video is its own positive (distance clamped to sqrt(1e-12)), every video takes
    part (fully: ``released_categories``; weakly: argmax of the video label, 0 for an all-zero one), missing
    negatives count as 1e12 away, mean over the whole batch. (Theirs fails on a batch smaller than
    ``negatives``; here the closest min(negatives, B) count.)"""
    embeddings = F.normalize(fusion, dim=-1).mean(dim=1)
    squared = (embeddings ** 2).sum(dim=1, keepdim=True)
    distances = (squared + squared.T - 2 * embeddings @ embeddings.T).clamp(min=RELEASED_EPS).sqrt()
    same = (categories[:, None] == categories[None, :]).to(fusion.dtype)
    positive = distances * same - RELEASED_FAR * (1 - same)
    negative = distances * (1 - same) + RELEASED_FAR * same
    hardest_positive = positive.max(dim=1).values
    closest = negative.topk(min(negatives, len(categories)), dim=1, largest=False).values.mean(dim=1)
    return F.relu(hardest_positive - closest + margin).mean()

