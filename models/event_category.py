"""The decision rule of networks with an event/background head and a video category head (CPSP, AVSDN).

Each segment is an event when sigmoid(event logit) > 0.5, and then of the video's most likely
category; weakly supervised, the video prediction max-pools sigmoid(event logit_t) * category
logits over t. One definition, shared by every network built on these two heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avepipe.models.outputs import ModelOutput


class EventCategoryRule:
    """Mixin for an ``EventNetwork`` whose output has ``event_logits`` [B,T] and ``category_logits`` [B,C]."""

    def segment_scores(self, out: ModelOutput) -> Tensor:
        """[B,T,1+C]: sigmoid(event logit), then the video's category probabilities repeated per segment
        (both average meaningfully over overlapping windows)."""
        event = torch.sigmoid(out.event_logits).unsqueeze(-1)
        category = F.softmax(out.category_logits, dim=-1).unsqueeze(1).expand(-1, event.shape[1], -1)
        return torch.cat([event, category], dim=-1)

    def predict_from_scores(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Category if P(event) > 0.5 else background; confidence P(event)*P(category) or 1-P(event)."""
        event, category = scores[..., 0], scores[..., 1:]
        category_prob, category_label = category.max(dim=-1)
        is_event = event > 0.5
        labels = torch.where(is_event, category_label, torch.full_like(category_label, self.background))
        confidence = torch.where(is_event, event * category_prob, 1.0 - event)
        return labels, confidence

    def class_probabilities(self, scores: Tensor) -> Tensor:
        """P(class) = P(event) P(category), P(background) = 1 - P(event): what the decision rule compares."""
        event, category = scores[..., :1], scores[..., 1:]
        return torch.cat([event * category, 1.0 - event], dim=-1)


def weak_video_prob(event_logits: Tensor, category_logits: Tensor) -> Tensor:
    """[B,C]: softmax over classes of max_t sigmoid(event logit_t) * category logit."""
    fused = torch.sigmoid(event_logits).unsqueeze(-1) * category_logits.unsqueeze(1)     # [B,T,C]
    return F.softmax(fused.max(dim=1).values, dim=-1)
