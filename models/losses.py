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


def avps_target(is_event: Tensor) -> Tensor:
    """G_t = 1/n on the n event segments of each video, 0 elsewhere (all zero without events)."""
    is_event = is_event.float()
    return is_event / is_event.sum(dim=1, keepdim=True).clamp_min(1.0)


def avps_loss(similarity: Tensor, is_event: Tensor) -> Tensor:
    """AVPS = MSE(ReLU(s) / (sum_t ReLU(s) + 1e-8), G), mean over all B*T entries."""
    positive = F.relu(similarity)
    predicted = positive / (positive.sum(dim=1, keepdim=True) + EPS)
    return F.mse_loss(predicted, avps_target(is_event))


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
    features = F.normalize(fusion, dim=-1)
    exp_sim = torch.exp(torch.bmm(features, features.transpose(1, 2)) / temperature)   # [B,T,T]
    per_video = []
    for video_exp, events in zip(exp_sim, is_event.bool()):
        if not events.any():
            continue
        rows = video_exp[events]                                                      # [n,T]
        positive = rows[:, events].sum(dim=1)
        background = ~events
        negative = rows[:, background].mean(dim=1) if background.any() else torch.zeros_like(positive)
        per_video.append(-torch.log(positive / (positive + negative)).mean())
    return torch.stack(per_video).mean() if per_video else _zero_like_graph(fusion)


def psa_video_loss(fusion: Tensor, categories: Tensor, margin: float = 0.2, negatives: int = 3) -> Tensor:
    """PSA_V: margin ranking between the hardest positive and the mean of the 3 closest negatives.

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
    terms = []
    for i in range(len(categories)):
        if not (same[i].any() and other[i].any()):
            continue
        hardest_positive = distances[i][same[i]].max()
        negative_distances = distances[i][other[i]]
        closest = torch.topk(negative_distances, min(negatives, len(negative_distances)), largest=False).values
        terms.append(F.relu(hardest_positive - closest.mean() + margin))
    return torch.stack(terms).mean() if terms else _zero_like_graph(fusion)


def sspsp_loss(audio_feat: Tensor, visual_feat: Tensor, temperature: float = 0.1) -> Tensor:
    """SSPSP InfoNCE: a_f and v_f of the same segment are the positive pair, every other segment
    of the batch a negative; cosine similarity / temperature, symmetric (audio->visual and back)."""
    audio = F.normalize(audio_feat.reshape(-1, audio_feat.shape[-1]), dim=-1)
    visual = F.normalize(visual_feat.reshape(-1, visual_feat.shape[-1]), dim=-1)
    logits = audio @ visual.T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
