"""Positive Sample Propagation: exchange information only between strongly related segments.

The connection matrices are the researcher-facing output (``gamma_va``, ``gamma_av``).
Two variants, as in the authors' code: the fully supervised block re-normalises
after pruning and projects with ``v_fc``/``a_fc``; the weakly supervised one does neither.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-8


def l1_normalise_rows(matrix: Tensor) -> Tensor:
    """Divide each row by its sum (+1e-8), so all-zero rows stay zero instead of NaN."""
    return matrix / (matrix.sum(dim=-1, keepdim=True) + EPS)


def prune(gamma: Tensor, tau: float) -> Tensor:
    """Keep entries strictly greater than tau (tau=-inf keeps all, tau=0 drops zeros)."""
    return gamma * (gamma > tau).to(gamma.dtype)


def connection_matrices(v2: Tensor, a1: Tensor, tau: float, renormalise: bool) -> tuple[Tensor, Tensor]:
    """beta_va = ReLU(v2 a1^T / sqrt(d)), beta_av = beta_va^T; l1-normalise rows, prune, optionally again."""
    beta_va = F.relu(torch.bmm(v2, a1.transpose(1, 2)) / math.sqrt(v2.shape[-1]))
    out = []
    for beta in (beta_va, beta_va.transpose(1, 2)):
        gamma = prune(l1_normalise_rows(beta), tau)
        out.append(l1_normalise_rows(gamma) if renormalise else gamma)
    return out[0], out[1]


class PSP(nn.Module):
    """PSP block on Bi-LSTM features a_l, v_l [B,T,256] -> fusion, v_f, a_f, gamma_va, gamma_av."""

    def __init__(self, dim: int = 256, tau: float = 0.099, fully: bool = True, dropout: float = 0.1):
        super().__init__()
        self.tau = tau
        self.fully = fully
        self.v_L1 = nn.Linear(dim, dim, bias=False)
        self.v_L2 = nn.Linear(dim, dim, bias=False)
        self.a_L1 = nn.Linear(dim, dim, bias=False)
        self.a_L2 = nn.Linear(dim, dim, bias=False)
        projections = [self.v_L1, self.v_L2, self.a_L1, self.a_L2]
        if fully:
            self.v_fc = nn.Linear(dim, dim, bias=False)
            self.a_fc = nn.Linear(dim, dim, bias=False)
            projections += [self.v_fc, self.a_fc]
        self.layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        for layer in projections:
            nn.init.xavier_uniform_(layer.weight)

    def _branch(self, layer: nn.Linear, x: Tensor) -> Tensor:
        return self.dropout(F.relu(layer(x)))

    def forward(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """audio=a_l, visual=v_l [B,T,dim] -> (fusion, v_f, a_f, gamma_va, gamma_av)."""
        v1, v2 = self._branch(self.v_L1, visual), self._branch(self.v_L2, visual)
        a1, a2 = self._branch(self.a_L1, audio), self._branch(self.a_L2, audio)
        gamma_va, gamma_av = connection_matrices(v2, a1, self.tau, renormalise=self.fully)
        v_psp = visual + torch.bmm(gamma_va, a2)
        a_psp = audio + torch.bmm(gamma_av, v1)
        if self.fully:
            v_psp = self._branch(self.v_fc, v_psp)
            a_psp = self._branch(self.a_fc, a_psp)
        v_f, a_f = self.layer_norm(v_psp), self.layer_norm(a_psp)
        return (v_f + a_f) / 2, v_f, a_f, gamma_va, gamma_av
