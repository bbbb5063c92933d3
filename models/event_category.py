"""What the networks with an event-vs-background head and a video category head share (CPSP, SSPSP,
CMRAN, AVSDN, CMBS, CACE-Net): the event/category decision rule, the weak video prediction and the
fully supervised event + category loss.

These networks score each segment as event-vs-background (``event_logits`` [B,T]) and the
whole video once over categories (``category_logits`` [B,K]); a segment is the video's
category where sigmoid(event logit) > 0.5 and background elsewhere. K is the number of event
classes C, or C+1 when the category head also scores background (CMRAN weakly): its argmax
may then itself be background.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avepipe.models.losses import released_categories
from avepipe.models.outputs import ModelOutput


def event_category_scores(event_probability: Tensor, category_logits: Tensor) -> Tensor:
    """[B,T,1+K]: P(event) per segment, then the video's K category probabilities repeated per segment
    (both average meaningfully over overlapping windows)."""
    event = event_probability.unsqueeze(-1)
    category = F.softmax(category_logits, dim=-1).unsqueeze(1).expand(-1, event.shape[1], -1)
    return torch.cat([event, category], dim=-1)


class EventCategoryRule:
    """Mixin for an ``EventNetwork`` whose output has ``event_logits`` and ``category_logits``."""

    background: int

    def segment_scores(self, out: ModelOutput) -> Tensor:
        return event_category_scores(torch.sigmoid(out.event_logits), out.category_logits)

    def predict_from_scores(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Category if P(event) > 0.5 else background; confidence: that label's ``class_probabilities``
        (P(event)*P(category), or 1-P(event) for background)."""
        category_label = scores[..., 1:].argmax(dim=-1)
        labels = torch.where(scores[..., 0] > 0.5, category_label, torch.full_like(category_label, self.background))
        confidence = self.class_probabilities(scores).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return labels, confidence

    def class_probabilities(self, scores: Tensor) -> Tensor:
        """P(class) = P(event) P(category), P(background) = 1 - P(event) (+ P(event) P(background category)
        when the category head scores background): what the decision rule compares."""
        event, category = scores[..., :1], scores[..., 1:]
        joint = event * category
        if joint.shape[-1] == self.background:
            joint = F.pad(joint, (0, 1))
        return torch.cat([joint[..., :-1], joint[..., -1:] + 1.0 - event], dim=-1)


def weak_video_prediction(event_logits: Tensor, category_logits: Tensor) -> Tensor:
    """[B,K] softmax over categories of max_t sigmoid(event logit_t) * category logit: the video-level
    prediction the weakly supervised CPSP framework and CMRAN train against video labels."""
    fused = torch.sigmoid(event_logits).unsqueeze(-1) * category_logits.unsqueeze(1)      # [B,T,K]
    return F.softmax(fused.max(dim=1).values, dim=-1)


def event_category_loss(out: ModelOutput, segment_labels: Tensor, background: int) -> tuple[Tensor, Tensor]:
    """(event BCE, category CE) as the CMRAN and CPSP authors' fully supervised scripts compute them: BCE of
    each segment's event logit against event-or-not, cross-entropy of the video's category logits against
    the largest class index over its segments with background counted as 0 (``released_categories``)."""
    is_event = (segment_labels != background).to(out.event_logits.dtype)
    event = F.binary_cross_entropy_with_logits(out.event_logits, is_event)
    category = F.cross_entropy(out.category_logits, released_categories(segment_labels, background))
    return event, category
