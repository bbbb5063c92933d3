"""AVSDN (Lin et al., ICASSP 2019) as the CPSP repository's ``cpsp_avel/model/avsdn.py`` computes it.

Audio-guided visual attention; an audio and a visual Bi-LSTM whose final states, fused by one
residual block (AVEL's DMRN block: U_a, U_v), start a third Bi-LSTM over [audio, attended visual];
its ReLU'd outputs feed CPSP's event/background head per segment and a category head on their
mean over t. Trained in the CPSP framework with that framework's recipe and losses.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models import losses
from avepipe.models.avga import AVGA
from avepipe.models.base import EventNetwork
from avepipe.models.event_category import EventCategoryRule, weak_video_prediction
from avepipe.models.outputs import ModelOutput
from avepipe.models.psp_cpsp import CPSP_FRAMEWORK, import_cpsp_state
from avepipe.models.registry import AUTHORS, ModelFamily, Recipe


def residual_branch(dim: int) -> nn.Sequential:
    """Linear -> tanh -> Linear (their ``U_a`` / ``U_v``)."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))


def dual_residual_fusion(u_a: nn.Module, u_v: nn.Module, audio: Tensor, video: Tensor) -> Tensor:
    """Their TBMRF block, one pass (avsdn.py:68-84): each modality's residual is the OTHER one's input."""
    merged = (u_v(video) + u_a(audio)) * 0.5
    return (torch.tanh(audio + merged) + torch.tanh(video + merged)) * 0.5


class _AVSDNBase(EventCategoryRule, EventNetwork):
    """Encoder and both heads; the setting decides only the loss (and, weakly, the video prediction)."""

    model_name = "avsdn"

    def __init__(self, num_classes: int = 28, hidden: int = 128):
        super().__init__(num_classes)
        self.attention = AVGA(audio_dim=128)
        self.lstm_audio = nn.LSTM(128, hidden, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(512, hidden, 1, batch_first=True, bidirectional=True)
        self.lstm_a_v = nn.LSTM(512 + 128, hidden, 1, batch_first=True, bidirectional=True)
        self.U_v = residual_branch(hidden)
        self.U_a = residual_branch(hidden)
        self.event_head = nn.Linear(2 * hidden, 1)
        self.category_head = nn.Linear(2 * hidden, num_classes)
        for layer in (self.event_head, self.category_head):     # weights only, as theirs
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        attended, attention = self.attention(audio, visual)
        _, (h_v, c_v) = self.lstm_video(attended)
        _, (h_a, c_a) = self.lstm_audio(audio)
        state = tuple(dual_residual_fusion(self.U_a, self.U_v, F.relu(a), F.relu(v))
                      for a, v in ((h_a, h_v), (c_a, c_v)))
        fusion = F.relu(self.lstm_a_v(torch.cat([audio, attended], dim=-1), state)[0])
        return ModelOutput(fusion=fusion, attention=attention, event_logits=self.event_head(fusion).squeeze(-1),
                           category_logits=self.category_head(fusion.mean(dim=1)))


class FrameworkFullyLoss:
    """Event BCE per segment + category cross-entropy per video (the CPSP framework's two base terms)."""

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        is_event = (segment_labels != self.background).to(out.event_logits.dtype)
        event = F.binary_cross_entropy_with_logits(out.event_logits, is_event)
        category = F.cross_entropy(out.category_logits, losses.released_categories(segment_labels, self.background))
        return {"loss": event + category, "event": event, "category": category}


class FrameworkWeaklyLoss:
    """Soft margin loss between softmax(max_t sigmoid(event_t) * category logits) and the video's event classes."""

    setting = "weakly"

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = super().forward(audio, visual)
        out.video_prob = weak_video_prediction(out.event_logits, out.category_logits)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        target = video_labels[:, : self.num_classes].to(out.video_prob.dtype)     # their loader drops background
        video = F.multilabel_soft_margin_loss(out.video_prob, target)
        return {"loss": video, "video": video}


class FullyAVSDNNet(FrameworkFullyLoss, _AVSDNBase):
    """Fully supervised AVSDN."""


class WeaklyAVSDNNet(FrameworkWeaklyLoss, _AVSDNBase):
    """Weakly supervised AVSDN."""


def build_avsdn(setting: str, num_classes: int = 28) -> _AVSDNBase:
    return (WeaklyAVSDNNet if setting == "weakly" else FullyAVSDNNet)(num_classes)


def rename_framework_keys(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """The CPSP framework's attention ``affine_*`` are our ``attention.affine_*``; its one-layer heads
    (``.0.``) our ``*_head``."""
    return {"attention." + key if key.startswith("affine_") else key: value
            for key, value in import_cpsp_state(state, setting).items()}


def import_avsdn_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    if "U_v.0.weight" not in state or "lstm_a_v.weight_ih_l0" not in state:
        raise ValueError("not an AVSDN state-dict (it has no 'U_v.0.weight' or no 'lstm_a_v.weight_ih_l0')")
    return rename_framework_keys(state, setting)


def _recipe(base: Recipe, script: str) -> Recipe:
    return replace(base, source=f"CPSP {script}; intended flags of run_fully_supv.sh/run_weakly_supv.sh (docs/models.md)")


FAMILIES = (
    ModelFamily(
        name="avsdn", summary="AVSDN, audio-visual sequence-to-sequence dual network (Lin et al., ICASSP 2019)",
        build=build_avsdn,
        recipes={AUTHORS: {"fully": _recipe(CPSP_FRAMEWORK["fully"], "fully_supv_main.py:158-161,253-255,278-279"),
                           "weakly": _recipe(CPSP_FRAMEWORK["weakly"], "weakly_supv_main.py:156-162,229-230,253-254")}},
        import_state=import_avsdn_state, published={"fully": 72.6, "weakly": 67.3}),    # PSP paper, Table 4
)
