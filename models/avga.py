"""Audio-guided visual attention (AVGA, from AVEL): where in the frame the sound points.

By default it follows the authors' released code, including its broadcast of the audio term
along the *position* axis (``u[:, :, None]``), which is what their weights expect. ``form="paper"``
adds the audio term along the attention's *hidden* axis instead, as the AVEL paper writes it
(Sec. 3.2: ``x_t = w_f tanh(W_v U_v(v_t) + (W_a U_a(a_t)) 1^T)``, docs/models.md "AVEL").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AVGA_FORMS = ("released", "paper")


class AVGA(nn.Module):
    """Attend over the H*W visual positions of each segment, guided by that segment's audio."""

    def __init__(self, audio_dim: int = 128, visual_dim: int = 512, hidden_dim: int = 512, positions: int = 49,
                 form: str = "released"):
        super().__init__()
        if form not in AVGA_FORMS:
            raise ValueError(f"unknown AVGA form {form!r} (expected one of {', '.join(AVGA_FORMS)})")
        self.form = form
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
        s = self.affine_v(v)                                                       # [N,49 positions,49 units]
        u = self.affine_g(q)                                                       # [N,49]
        audio_term = u[:, :, None] if self.form == "released" else u[:, None, :]   # per position | per unit
        z = self.affine_h(torch.tanh(s + audio_term)).squeeze(-1)                  # [N,49]
        alpha = F.softmax(z, dim=-1)
        attended = torch.bmm(alpha.unsqueeze(1), maps).squeeze(1)                  # [N,C]
        return (attended.reshape(batch, segments, channels),
                alpha.reshape(batch, segments, height, width))
