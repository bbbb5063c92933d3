"""AVEL (Tian et al., ECCV 2018) as YapengTian/AVE-ECCV18 computes it, fully and weakly supervised.

Audio-guided visual attention pools each segment's 7x7 map; one Bi-LSTM per modality; the two
outputs are concatenated and classified per segment into C+1 classes. The authors train both
settings with a multi-label soft margin loss applied to softmax *probabilities* (their code does
this; avepipe keeps it). Two techniques of the PSP paper (Table 2) are options: the audio-visual
pair similarity loss (fully) and the weighting branch of PSP's weakly supervised classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.errors import UserError
from avepipe.models import losses
from avepipe.models.avga import AVGA, AVGA_FORMS
from avepipe.models.base import EventNetwork
from avepipe.models.lstm import AudioVisualLSTM
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import AUTHORS, ModelFamily, ModelOption, Recipe

WEIGHTINGS = ("none", "psp")


class _AVELBase(EventNetwork):
    """Attention -> Bi-LSTMs -> ReLU(concat) -> L1 -> ReLU -> L2: per-segment scores [B,T,C+1]."""

    model_name = "avel"

    def __init__(self, num_classes: int, avga: str = "released"):
        super().__init__(num_classes)
        self.attention = AVGA(audio_dim=128, form=avga)     # raw VGGish into the attention, as theirs
        self.lstm_a_v = AudioVisualLSTM(128, 512, 128)
        self.L1 = nn.Linear(512, 64)
        self.L2 = nn.Linear(64, num_classes + 1)
        for layer in (self.L1, self.L2):          # weights only: their biases keep PyTorch's default
            nn.init.xavier_uniform_(layer.weight)

    def options(self) -> dict:
        return {"avga": self.attention.form}

    def encode(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        attended, attention = self.attention(audio, visual)
        a_l, v_l = self.lstm_a_v(audio, attended)
        scores = self.L2(F.relu(self.L1(F.relu(torch.cat([a_l, v_l], dim=-1)))))
        return ModelOutput(logits=scores, audio_feat=a_l, visual_feat=v_l, attention=attention)


class FullyAVELNet(_AVELBase):
    """Fully supervised AVEL: soft margin loss on softmax(scores) per segment, optionally + PSP's AVPS."""

    def __init__(self, num_classes: int = 28, avps_weight: float = 0.0, avga: str = "released"):
        super().__init__(num_classes, avga)
        self.avps_weight = float(avps_weight)

    def options(self) -> dict:
        return {"avps_weight": self.avps_weight, **super().options()}

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = self.encode(audio, visual)
        out.similarity = F.cosine_similarity(out.visual_feat, out.audio_feat, dim=-1, eps=1e-12)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        target = F.one_hot(segment_labels, self.num_classes + 1).to(out.logits.dtype)
        margin = F.multilabel_soft_margin_loss(F.softmax(out.logits, dim=-1), target)
        if not self.avps_weight:
            return {"loss": margin, "margin": margin}
        avps = losses.avps_loss(out.similarity, segment_labels != self.background)
        return {"loss": margin + self.avps_weight * avps, "margin": margin, "avps": avps}


class WeaklyAVELNet(_AVELBase):
    """Weakly supervised AVEL: the video prediction is softmax(max_t score); soft margin loss against the
    video label (all C+1 columns: background only for background-only videos, as their MIL labels).

    ``weighting="psp"`` multiplies each segment's scores by sigmoid(ReLU(W3 score)) first (PSP's branch).
    """

    setting = "weakly"

    def __init__(self, num_classes: int = 28, weighting: str = "none", avga: str = "released"):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown AVEL weighting {weighting!r} (expected one of {', '.join(WEIGHTINGS)})")
        super().__init__(num_classes, avga)
        self.weighting = weighting
        if weighting == "psp":
            self.W3 = nn.Linear(num_classes + 1, 1, bias=False)     # PyTorch's default init, as PSP's code

    def options(self) -> dict:
        return {"weighting": self.weighting, **super().options()}

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        out = self.encode(audio, visual)
        if self.weighting == "psp":
            out.logits = out.logits * torch.sigmoid(F.relu(self.W3(out.logits)))
        out.video_prob = F.softmax(out.logits.max(dim=1).values, dim=-1)
        return out

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        video = F.multilabel_soft_margin_loss(out.video_prob, video_labels.to(out.video_prob.dtype))
        return {"loss": video, "video": video}


def build_avel(setting: str, num_classes: int = 28, avps_weight: float | None = None,
               weighting: str | None = None, avga: str | None = None) -> _AVELBase:
    if setting == "weakly":
        if avps_weight:
            raise UserError("avps_weight applies to fully supervised AVEL only (it needs segment labels)")
        return WeaklyAVELNet(num_classes, weighting or "none", avga or "released")
    if weighting not in (None, "none"):
        raise UserError("the PSP weighting branch applies to weakly supervised AVEL only")
    return FullyAVELNet(num_classes, avps_weight or 0.0, avga or "released")


def import_avel_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """AVE-ECCV18's att_Net keys: ``affine_*`` are our ``attention.affine_*``, ``lstm_*`` our ``lstm_a_v.lstm_*``."""
    if "L1.weight" not in state or "lstm_a_v.weight_ih_l0" in state:
        raise ValueError("not an AVE-ECCV18 att_Net state-dict (it has no 'L1.weight', or it has a fusion LSTM)")
    prefixes = {"affine_": "attention.", "lstm_": "lstm_a_v."}
    return {next((p + key for s, p in prefixes.items() if key.startswith(s)), key): value
            for key, value in state.items()}


def _avel_recipe(epochs: int, script: str, lines: str) -> Recipe:
    """Adam 1e-3, batch 64, StepLR(15000 iterations, x0.1) stepped every iteration, no clipping."""
    return Recipe(epochs=epochs, batch_size=64, lr=1e-3, lr_gamma=0.1, lr_period=15000, lr_unit="step",
                  source=f"AVE-ECCV18 {script}:{lines}")


AVPS_WEIGHT = ModelOption("avps_weight", float, "AVEL fully: weight of PSP's audio-visual pair similarity loss on "
                                                "the two Bi-LSTM outputs (0, the default, is the original AVEL; "
                                                "the PSP paper's 'AVEL + AVPS' uses PSP's 100).")
WEIGHTING = ModelOption("weighting", str, "AVEL weakly: 'psp' adds the weighting branch of PSP's weakly supervised "
                                          "classifier before AVEL's max pooling; 'none' (default) is the original.",
                        choices=WEIGHTINGS)
AVGA_FORM = ModelOption("avga", str, "AVEL's audio-guided attention: 'released' (default) adds the audio term per "
                                     "position, as the authors' code (their weights expect it); 'paper' adds it per "
                                     "attention unit, as the paper's equation (docs/models.md, AVEL 'Paper vs code').",
                        choices=AVGA_FORMS)

FAMILIES = (
    ModelFamily(
        name="avel", summary="AVEL, audio-guided attention + Bi-LSTMs (Tian et al., ECCV 2018)", build=build_avel,
        recipes={AUTHORS: {"fully": _avel_recipe(300, "supervised_main.py", "46-48,66-67,102-108"),
                           "weakly": _avel_recipe(250, "weak_supervised_main.py", "51-53,67-68,89-95")}},
        options=(AVPS_WEIGHT, WEIGHTING, AVGA_FORM), import_state=import_avel_state,
        published={"fully": 68.6, "weakly": 66.7}),    # PSP paper, Table 4
)
