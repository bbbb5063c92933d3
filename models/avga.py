"""Audio-guided visual attention (AVGA, from AVEL): where in the frame the sound points.

Follows the authors' released code, including its broadcast of the audio term
along the *position* axis (``u[:, :, None]``), which is what their weights expect.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AVGA(nn.Module):
    """Attend over the H*W visual positions of each segment, guided by that segment's audio."""

    def __init__(self, audio_dim: int = 128, visual_dim: int = 512, hidden_dim: int = 512, positions: int = 49):
        super().__init__()
        self.affine_audio = nn.Linear(audio_dim, hidden_dim)
        self.affine_video = nn.Linear(visual_dim, hidden_dim)
        self.affine_v = nn.Linear(hidden_dim, positions, bias=False)
        self.affine_g = nn.Linear(hidden_dim, positions, bias=False)
        self.affine_h = nn.Linear(positions, 1, bias=False)
        for layer in (self.affine_audio, self.affine_video, self.affine_v, self.affine_g, self.affine_h):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        """audio [B,T,da], visual [B,T,H,W,C] -> (attended visual [B,T,C], attention map [B,T,H,W])."""
        batch, segments, height, width, channels = visual.shape
        maps = visual.reshape(batch * segments, height * width, channels)        # V  [N,49,C]
        v = F.relu(self.affine_video(maps))                                        # [N,49,512]
        q = F.relu(self.affine_audio(audio.reshape(batch * segments, -1)))         # [N,512]
        s = self.affine_v(v)                                                       # [N,49,49]
        u = self.affine_g(q)                                                       # [N,49]
        z = self.affine_h(torch.tanh(s + u[:, :, None])).squeeze(-1)               # [N,49]
        alpha = F.softmax(z, dim=-1)
        attended = torch.bmm(alpha.unsqueeze(1), maps).squeeze(1)                  # [N,C]
        return (attended.reshape(batch, segments, channels),
                alpha.reshape(batch, segments, height, width))
