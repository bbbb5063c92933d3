"""SSPSP, the self-supervised PSP the CPSP paper studies, as the CPSP authors' framework trains it.

The network is CPSP's (``fully_psp_net`` / ``weakly_psp_net`` with flag ``sspsp``, same keys): PSP with
an event/background head and a video category head. Instead of CPSP's label-driven contrastive
terms it adds a label-free InfoNCE between each segment's audio and visual PSP features (docs/models.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avepipe.models.event_category import event_category_loss, weak_video_prediction
from avepipe.models.outputs import ModelOutput
from avepipe.models.psp_cpsp import (CPSP_FRAMEWORK, TAU, TAU_FULLY, TAU_WEAKLY, EventCategoryHeads,
                                     import_cpsp_state, tau_or_default)
from avepipe.models.registry import AUTHORS, ModelFamily

TEMPERATURE = 0.1


def label_free_nce_loss(audio_feat: Tensor, visual_feat: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """InfoNCE from audio to visual over all B*T segments of the batch: the visual feature of the same
    segment is the positive, every other segment's (its own video's included) a negative; cosine
    similarity / temperature. One direction only, as the authors' ``LabelFreeSelfSupervisedNCELoss``."""
    audio = F.normalize(audio_feat.reshape(-1, audio_feat.shape[-1]), dim=-1)
    visual = F.normalize(visual_feat.reshape(-1, visual_feat.shape[-1]), dim=-1)
    logits = audio @ visual.T / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


class _SSPSPBase(EventCategoryHeads):
    """CPSP's network with the authors' initialisation; ``nce_weight`` scales the label-free InfoNCE."""

    model_name = "sspsp"

    def __init__(self, tau: float, num_classes: int, nce_weight: float):
        super().__init__(tau, num_classes, authors_init=True)
        self.nce_weight = nce_weight

    def nce(self, out: ModelOutput) -> Tensor:
        return label_free_nce_loss(out.audio_feat, out.visual_feat)


class SSPSPNet(_SSPSPBase):
    """Fully supervised SSPSP: event BCE + category CE + 1 * InfoNCE(a_f, v_f)."""

    def __init__(self, tau: float = TAU_FULLY, num_classes: int = 28, nce_weight: float = 1.0):
        super().__init__(tau, num_classes, nce_weight)

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        event, category = event_category_loss(out, segment_labels, self.background)
        nce = self.nce(out)
        return {"loss": event + category + self.nce_weight * nce, "event": event, "category": category, "nce": nce}


class WeaklySSPSPNet(_SSPSPBase):
    """Weakly supervised SSPSP: CPSP's weak video prediction, multi-label soft margin + 1 * InfoNCE(a_f, v_f)."""

    setting = "weakly"

    def __init__(self, tau: float = TAU_WEAKLY, num_classes: int = 28, nce_weight: float = 1.0):
        super().__init__(tau, num_classes, nce_weight)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = super().forward(audio, visual)
        out.video_prob = weak_video_prediction(out.event_logits, out.category_logits)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """``segment_labels`` are not used; the target is the video label without its background column."""
        target = video_labels[:, : self.num_classes].to(out.video_prob.dtype)
        video = F.multilabel_soft_margin_loss(out.video_prob, target)
        nce = self.nce(out)
        return {"loss": video + self.nce_weight * nce, "video": video, "nce": nce}


def build_sspsp(setting: str, num_classes: int = 28, tau: float | None = None) -> _SSPSPBase:
    network = WeaklySSPSPNet if setting == "weakly" else SSPSPNet
    return network(tau=tau_or_default(setting, tau), num_classes=num_classes)


FAMILIES = (
    ModelFamily(
        name="sspsp", summary="Self-supervised PSP (studied in Zhou et al., TPAMI 2023, CPSP)", build=build_sspsp,
        recipes={AUTHORS: CPSP_FRAMEWORK}, options=(TAU,), import_state=import_cpsp_state),
)
