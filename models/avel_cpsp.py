"""The CPSP repository's "AVEL" (``cpsp_avel/model/avel.py``, class TBMRF_Net): NOT the ECCV 2018 AVEL.

It is AVEL's attention and Bi-LSTMs with DMRN fusion of the two LSTM outputs and CPSP's
event/category heads, trained in the CPSP framework like AVSDN. It is offered under its own name
because its released forward permutes the visual input as if it were channels-first
(``avel.py:89``: ``[B,T,7,7,512]`` -> ``[B,T,7,512,7]``, then read as 49 x 512), which scrambles
positions and channels. avepipe computes it as released, scramble included (docs/models.md).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models.avga import AVGA
from avepipe.models.base import EventNetwork
from avepipe.models.event_category import EventCategoryRule
from avepipe.models.lstm import AudioVisualLSTM
from avepipe.models.outputs import ModelOutput
from avepipe.models.avsdn import (FAMILIES as AVSDN_FAMILIES, FrameworkFullyLoss, FrameworkWeaklyLoss,
                                  dual_residual_fusion, rename_framework_keys, residual_branch)
from avepipe.models.registry import ModelFamily


def released_visual_order(visual: Tensor) -> Tensor:
    """[B,T,H,W,C] as avel.py:89-90 reads it: permute(0,1,3,4,2) then flattened to H*W rows of C values."""
    return visual.permute(0, 1, 3, 4, 2).reshape(visual.shape)


class _CPSPAVELBase(EventCategoryRule, EventNetwork):
    """Attention -> Bi-LSTMs -> DMRN fusion of their outputs -> ReLU -> CPSP's heads; PyTorch default init
    everywhere (their ``init_weights`` call is commented out, avel.py:60)."""

    model_name = "avel_cpsp"

    def __init__(self, num_classes: int = 28, hidden: int = 128):
        super().__init__(num_classes)
        self.attention = AVGA(audio_dim=128)
        self.lstm_a_v = AudioVisualLSTM(128, 512, hidden)
        self.U_v = residual_branch(2 * hidden)
        self.U_a = residual_branch(2 * hidden)
        self.event_head = nn.Linear(2 * hidden, 1)
        self.category_head = nn.Linear(2 * hidden, num_classes)
        for layer in self.attention.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        attended, attention = self.attention(audio, released_visual_order(visual))
        a_l, v_l = self.lstm_a_v(audio, attended)
        fusion = F.relu(dual_residual_fusion(self.U_a, self.U_v, a_l, v_l))
        return ModelOutput(fusion=fusion, attention=attention, event_logits=self.event_head(fusion).squeeze(-1),
                           category_logits=self.category_head(fusion.mean(dim=1)))


class FullyCPSPAVELNet(FrameworkFullyLoss, _CPSPAVELBase):
    """Fully supervised, the CPSP framework's event BCE + category CE."""


class WeaklyCPSPAVELNet(FrameworkWeaklyLoss, _CPSPAVELBase):
    """Weakly supervised, the CPSP framework's video-level soft margin loss."""


def build_avel_cpsp(setting: str, num_classes: int = 28) -> _CPSPAVELBase:
    return (WeaklyCPSPAVELNet if setting == "weakly" else FullyCPSPAVELNet)(num_classes)


def import_avel_cpsp_state(state: dict[str, Tensor], setting: str) -> dict[str, Tensor]:
    """TBMRF_Net's keys: AVSDN's renaming, and its two LSTMs under ``lstm_a_v.``."""
    if "U_v.0.weight" not in state or "lstm_a_v.weight_ih_l0" in state:
        raise ValueError("not a CPSP-repository TBMRF_Net state-dict (it has no 'U_v.0.weight', or it has "
                         "AVSDN's 'lstm_a_v')")
    return {("lstm_a_v." + key if key.startswith(("lstm_audio", "lstm_video")) else key): value
            for key, value in rename_framework_keys(state, setting).items()}


FAMILIES = (
    ModelFamily(
        name="avel_cpsp", summary="the CPSP repository's AVEL variant (DMRN fusion, CPSP heads; its visual "
                                  "input is scrambled as released, docs/models.md); not the ECCV 2018 AVEL",
        build=build_avel_cpsp, recipes=AVSDN_FAMILIES[0].recipes, import_state=import_avel_cpsp_state),
)
