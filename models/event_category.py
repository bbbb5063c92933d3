"""The event-gate decision rule shared by networks with an event/background logit per segment and one
category per video (CPSP, fully supervised CMBS): a segment is the video's category when P(event) > 0.5."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avepipe.models.outputs import ModelOutput


def event_category_scores(event_probability: Tensor, category_logits: Tensor) -> Tensor:
    """[B,T,1+K]: P(event) per segment, then the video's K category probabilities repeated per segment
    (both average meaningfully over overlapping windows)."""
    event = event_probability.unsqueeze(-1)
    category = F.softmax(category_logits, dim=-1).unsqueeze(1).expand(-1, event.shape[1], -1)
    return torch.cat([event, category], dim=-1)


class EventCategoryDecision:
    """Mixin for an ``EventNetwork`` whose output has ``event_logits`` [B,T] and ``category_logits`` [B,C]
    (or [B,C+1] with a background column, whose argmax then labels an event segment background)."""

    def segment_scores(self, out: ModelOutput) -> Tensor:
        return event_category_scores(torch.sigmoid(out.event_logits), out.category_logits)

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
