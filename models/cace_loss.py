"""CACE-Net's background-event contrastive term (the authors' supv_main.py:209-239), in log space.

Each segment has two views: the query (its fused feature projected by ``encoder_q``) and the key
(the same projection of the fused feature plus noise). An event segment's positives are every other
view of an event segment of its video; a background segment's only positive is its own other view.
The term is -log(mean over the positives of exp(s/t) / sum over all other views of exp(s/t)), the
mean over all 2T views of all videos. The authors sum exp(s/0.01) directly, which overflows in
float32 (exp(100)); they train in float64. Here the same value comes from log-sum-exp.
"""
from __future__ import annotations

import torch
from torch import Tensor


def background_event_contrastive_loss(query: Tensor, key: Tensor, is_event: Tensor, temperature: float) -> Tensor:
    """``query``, ``key`` [B,T,D] unit vectors; ``is_event`` [B,T] 0/1 (the segment labels, not predictions)."""
    steps = query.shape[1]
    views = torch.cat([query, key], dim=1)                                     # [B,2T,D]
    logits = views @ views.transpose(1, 2) / temperature                       # [B,2T,2T]
    event = is_event.bool()
    same_kind = event.unsqueeze(2) & event.unsqueeze(1)                        # both views of event segments
    eye = torch.eye(steps, dtype=torch.bool, device=query.device)
    within = same_kind & ~eye                                                  # query-query, key-key
    across = same_kind | eye                                                   # query-key: own other view too
    positives = torch.cat([torch.cat([within, across], dim=2), torch.cat([across, within], dim=2)], dim=1)
    others = ~torch.eye(2 * steps, dtype=torch.bool, device=query.device)
    minus_inf = torch.finfo(logits.dtype).min
    log_positive = logits.masked_fill(~positives, minus_inf).logsumexp(dim=2)
    log_all = logits.masked_fill(~others, minus_inf).logsumexp(dim=2)
    return -(log_positive - log_all - positives.sum(dim=2).to(logits.dtype).log()).mean()
