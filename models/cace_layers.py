"""The temporal relation blocks CACE-Net takes from CMRAN: self-attention encoders, cross-modal decoders
and the audio-visual interaction that fuses the two streams.

Attribute names equal the authors' (CACE/model/models.py:31-174, CACE/model/main_model.py:68-100 and
288-302) so their state-dicts load directly. Their ``encoder_layer``/``decoder_layer`` templates (deep-
copied into the stacks, never run) and the decoder's ``self_attn`` (never called) are not carried.
Every block works on [B,T,D] (the authors' run on [T,B,D]; the weights are the same).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _FeedForwardBlock(nn.Module):
    """Attention -> add & norm -> ReLU feed-forward -> add & norm (dropout 0.1 throughout)."""

    def __init__(self, d_model: int, heads: int, feedforward: int):
        super().__init__()
        self.linear1 = nn.Linear(d_model, feedforward)
        self.dropout = nn.Dropout(0.1)
        self.linear2 = nn.Linear(feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(0.1)
        self.dropout2 = nn.Dropout(0.1)

    def _finish(self, x: Tensor, attended: Tensor) -> Tensor:
        x = self.norm1(x + self.dropout1(attended))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class EncoderLayer(_FeedForwardBlock):
    """Self-attention over the segments."""

    def __init__(self, d_model: int, heads: int, feedforward: int):
        super().__init__(d_model, heads, feedforward)
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=0.1, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self._finish(x, self.self_attn(x, x, x)[0])


class DecoderLayer(_FeedForwardBlock):
    """Attention from the query stream to [memory; query] (the other modality's segments, then its own)."""

    def __init__(self, d_model: int, heads: int, feedforward: int):
        super().__init__(d_model, heads, feedforward)
        self.multihead_attn = nn.MultiheadAttention(d_model, heads, dropout=0.1, batch_first=True)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        memory = torch.cat([memory, x], dim=1)
        return self._finish(x, self.multihead_attn(x, memory, memory)[0])


class _Stack(nn.Module):
    """``layers`` run in turn (the authors' Encoder/Decoder without their unused final norm)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class TemporalEncoder(nn.Module):
    """Linear projection then two self-attention layers (4 heads): the authors' InternalTemporalRelationModule."""

    def __init__(self, input_dim: int, d_model: int, feedforward: int):
        super().__init__()
        self.affine_matrix = nn.Linear(input_dim, d_model)
        self.encoder = _Stack([EncoderLayer(d_model, 4, feedforward) for _ in range(2)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.affine_matrix(x)
        for layer in self.encoder.layers:
            x = layer(x)
        return x


class CrossModalDecoder(nn.Module):
    """Linear projection then one decoder layer (4 heads): the authors' CrossModalRelationAttModule."""

    def __init__(self, input_dim: int, d_model: int, feedforward: int):
        super().__init__()
        self.affine_matrix = nn.Linear(input_dim, d_model)
        self.decoder = _Stack([DecoderLayer(d_model, 4, feedforward)])

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        x = self.affine_matrix(query)
        for layer in self.decoder.layers:
            x = layer(x, memory)
        return x
