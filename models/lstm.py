"""Temporal encoders: one Bi-LSTM per modality, named as in the authors' code so their keys load."""
from __future__ import annotations

from torch import Tensor, nn


class AudioVisualLSTM(nn.Module):
    """Two independent 1-layer Bi-LSTMs (zero initial state), audio and visual, any length T."""

    def __init__(self, audio_dim: int = 128, visual_dim: int = 128, hidden_dim: int = 128):
        super().__init__()
        self.lstm_audio = nn.LSTM(audio_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(visual_dim, hidden_dim, 1, batch_first=True, bidirectional=True)

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor]:
        """audio [B,T,da], visual [B,T,dv] -> (a_l, v_l), each [B,T,2*hidden]."""
        audio_out, _ = self.lstm_audio(audio)
        visual_out, _ = self.lstm_video(visual)
        return audio_out, visual_out
