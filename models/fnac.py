"""Sound-source localiser on cached features: where in the frame the sound comes from (FNAC).

The authors' network (github.com/OpenNLPLab/FNAC_AVL) projects a ResNet-18 image map with a
1x1 convolution and an audio ResNet embedding with a linear layer into one 512-d space, both
L2-normalised. Here the backbones are the cache's VGG-19 pool5 maps and VGGish embeddings, so
only the two projections are learned: a per-position linear layer (= 1x1 convolution) on
``[7, 7, 512]`` and a linear layer on ``[128]``. Dropout, initialisation, tau and loss weights
follow the authors' code. Saved and loaded by models/checkpoint.py (``task="source"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models.fnac_losses import FNS_WEIGHT, FOREGROUND_THRESHOLD, TAU, TNE_WEIGHT, cross_similarity, fnac_loss


class SoundSourceLocalizer(nn.Module):
    """Audio ``[B,128]`` and visual maps ``[B,7,7,512]`` -> similarity maps ``[B,7,7]``.

    ``use_fns=False, use_tne=False`` is the plain contrastive (EZ-VSL-style) baseline.
    """

    def __init__(
        self,
        audio_dim: int = 128,
        visual_dim: int = 512,
        dim: int = 512,
        tau: float = TAU,
        dropout_visual: float = 0.9,
        dropout_audio: float = 0.0,
        use_fns: bool = True,
        use_tne: bool = True,
        fns_weight: float = FNS_WEIGHT,
        tne_weight: float = TNE_WEIGHT,
        foreground_threshold: float = FOREGROUND_THRESHOLD,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        self.config = dict(
            audio_dim=audio_dim, visual_dim=visual_dim, dim=dim, tau=tau,
            dropout_visual=dropout_visual, dropout_audio=dropout_audio,
            use_fns=use_fns, use_tne=use_tne, fns_weight=fns_weight, tne_weight=tne_weight,
            foreground_threshold=foreground_threshold, pooling=pooling,
        )
        self.visual_dropout = nn.Dropout(dropout_visual)
        self.visual_proj = nn.Linear(visual_dim, dim)
        self.audio_dropout = nn.Dropout(dropout_audio)
        self.audio_proj = nn.Linear(audio_dim, dim)
        # The authors' init: Kaiming (fan_out) for the 1x1 image conv, N(0, 0.01) truncated for audio.
        nn.init.kaiming_normal_(self.visual_proj.weight, mode="fan_out", nonlinearity="relu")
        nn.init.trunc_normal_(self.audio_proj.weight, mean=0.0, std=0.01)

    def embed_audio(self, audio: Tensor) -> Tensor:
        """``[B,128]`` -> L2-normalised ``[B,D]``."""
        return F.normalize(self.audio_proj(self.audio_dropout(audio)), dim=-1)

    def embed_visual(self, visual: Tensor) -> Tensor:
        """``[B,7,7,512]`` -> L2-normalised per position ``[B,7,7,D]``."""
        return F.normalize(self.visual_proj(self.visual_dropout(visual)), dim=-1)

    def similarity_map(self, audio: Tensor, visual: Tensor) -> Tensor:
        """Cosine similarity of each sample's audio with each of its own positions: ``[B,7,7]``."""
        return torch.einsum("nhwc,nc->nhw", self.embed_visual(visual), self.embed_audio(audio))

    def batch_cross_similarity(self, audio: Tensor, visual: Tensor) -> Tensor:
        """Every image against every audio of the batch: ``[B_img, B_aud, 7, 7]``."""
        return cross_similarity(self.embed_audio(audio), self.embed_visual(visual))

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        return self.similarity_map(audio, visual)

    def fnac_loss(self, audio: Tensor, visual: Tensor, contrastive_only: bool = False) -> dict[str, Tensor]:
        """The training objective with this model's switches and weights (see models/fnac_losses.py)."""
        c = self.config
        return fnac_loss(
            self.embed_audio(audio), self.embed_visual(visual), tau=c["tau"],
            use_fns=c["use_fns"], use_tne=c["use_tne"], fns_weight=c["fns_weight"],
            tne_weight=c["tne_weight"], foreground_threshold=c["foreground_threshold"],
            contrastive_only=contrastive_only, pooling=c["pooling"],
        )
