"""CACE-Net's audio-visual co-guidance attention: audio guides where and which channels to look at in the
7x7 map, the visual stream guides which seconds of audio to emphasise.

Attribute names equal the authors' ``Co_Guided_Attention`` (CACE/model/models.py:296-453) so their
state-dicts load directly; its never-used ``v_norm2`` and ``ave_bottleneck`` are not carried.
Shapes: B videos, T segments, N = 49 spatial cells.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from avepipe.models.cmbs import GuidedAttentionLayers


def _attend(query: nn.Linear, key: nn.Linear, value: nn.Linear, x: Tensor) -> tuple[Tensor, Tensor]:
    """Unscaled dot-product self-attention over the middle axis of ``x`` [*, L, D]: (output, weights [*, L, L])."""
    weights = torch.softmax(query(x) @ key(x).transpose(1, 2), dim=-1)
    return weights @ value(x), weights


def _pool(maps: Tensor, cells: Tensor) -> Tensor:
    """Weighted sum of ``cells`` [BT,N,D] by ``maps`` [BT,1,N] -> [BT,D]."""
    return (maps @ cells).squeeze(1)


class CoGuidedAttention(GuidedAttentionLayers):
    """(visual [B,T,7,7,512], audio [B,T,128]) -> (guided visual [B,T,512], guided audio [B,T,128], maps).

    ``maps`` holds the audio-guided spatial attention [B,T,7,7], the visual self spatial attention
    [B,T,7,7] and the visual-guided audio attention over segments [B,T,T] (row t: which seconds of
    audio second t's picture draws on). ``beta`` weighs the visual self-attention gate, ``psai`` the
    visual-guided audio gate. The layers are CMBS's (``GuidedAttentionLayers``) plus CACE-Net's own.
    """

    def __init__(self, psai: float, beta: float, video_dim: int = 512, audio_dim: int = 128, hidden: int = 256):
        super().__init__(video_dim, audio_dim, hidden)
        self.psai, self.beta = psai, beta
        # visual-guided audio attention, after a temporal self-attention of the audio
        self.v_query = nn.Linear(video_dim, audio_dim)
        self.vaudio_key, self.vaudio_value = (nn.Linear(audio_dim, audio_dim) for _ in range(2))
        self.audio_query, self.audio_key, self.audio_value = (nn.Linear(audio_dim, audio_dim) for _ in range(3))
        self.a_norm = nn.LayerNorm(audio_dim)

    def declare_after_cell_attention(self, visual_dim: int) -> None:
        """One LayerNorm for both cell self-attentions, and the second one (it feeds the audio guidance)."""
        self.v_norm = nn.LayerNorm(visual_dim)
        self.video_query2 = nn.Linear(visual_dim, visual_dim // 4)
        self.video_key2 = nn.Linear(visual_dim, visual_dim // 4)
        self.video_value2 = nn.Linear(visual_dim, visual_dim)

    @staticmethod
    def _spatial_map(scorer: nn.Linear, query: Tensor) -> Tensor:
        """softmax over the N cells of tanh(scorer(query [BT,N,H])) -> [BT,1,N]."""
        return torch.softmax(torch.tanh(scorer(query)).transpose(1, 2), dim=-1)

    def forward(self, visual: Tensor, audio: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        batch, steps, height, width, dim = visual.shape
        raw = visual.reshape(batch * steps, height * width, dim)
        audio_flat = audio.reshape(batch * steps, -1)

        attended, _ = _attend(self.video_query, self.video_key, self.video_value, raw)
        cells = self.v_norm(raw + self.dropout(attended))
        attended2, _ = _attend(self.video_query2, self.video_key2, self.video_value2, raw)
        cells2 = self.v_norm(raw + self.dropout(attended2))

        # visual self spatial attention: each cell against the mean cell
        mean_cell = torch.relu(self.affine_video_ave(cells.mean(dim=1))).unsqueeze(1)
        self_maps = self._spatial_map(self.ave_v_att, torch.relu(self.affine_video_3(cells)) * mean_cell)
        self_feature = _pool(self_maps, cells)

        # audio-guided channel attention (from the self-attended cells, applied to the raw ones)
        joint = (torch.relu(self.affine_audio_1(audio_flat)).unsqueeze(1) * torch.relu(self.affine_video_1(cells)))
        channel = torch.sigmoid(self.affine_v_c_att(torch.relu(self.affine_bottleneck(joint.mean(dim=1)))))
        channel_cells = raw * (channel.unsqueeze(1) + 1)

        # audio-guided spatial attention
        query = torch.relu(self.affine_video_2(channel_cells)) * torch.relu(self.affine_audio_2(audio_flat)).unsqueeze(1)
        spatial_maps = self._spatial_map(self.affine_v_s_att, query)
        guided = _pool(spatial_maps, channel_cells)
        guided_visual = (guided + self.beta * torch.sigmoid(self_feature) * guided).reshape(batch, steps, dim)

        # visual-guided audio attention over the segments
        audio_attended, _ = _attend(self.audio_query, self.audio_key, self.audio_value, audio)
        audio_context = self.a_norm(audio + self.dropout(audio_attended))
        picture = self.v_query(cells2.mean(dim=1).reshape(batch, steps, dim))
        segment_weights = torch.softmax(picture @ self.vaudio_key(audio_context).transpose(1, 2), dim=-1)
        audio_guide = segment_weights @ self.vaudio_value(audio_context)
        guided_audio = audio + self.psai * torch.sigmoid(audio_guide) * audio

        maps = {"audio_guided_spatial": spatial_maps.reshape(batch, steps, height, width),
                "visual_self_spatial": self_maps.reshape(batch, steps, height, width),
                "visual_guided_audio": segment_weights}
        return guided_visual, guided_audio, maps
