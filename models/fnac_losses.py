"""FNAC's objectives (Sun et al., CVPR 2023) as functions of plain tensors, testable by hand.

Followed: the authors' released code (github.com/OpenNLPLab/FNAC_AVL, ``model.py``
``calculate_loss`` and ``train.py``), which builds on EZ-VSL (github.com/stoneMo/EZ-VSL):

- ``logits[n, m] = max_{h,w} <v_n(h,w), a_m> / tau``: image n against audio m, the
  similarity map max-pooled over positions (EZ-VSL's multiple-instance contrast).
- contrastive = CE(logits, diag) + CE(logits^T, diag) (image->audio plus audio->image; summed).
- FNS (false-negative suppression): ``L1(softmax(A A^T / tau), softmax(logits))`` with the
  audio-audio matrix (the code's ``fnac_loss1``) and ``L1(softmax(V V^T / tau), softmax(logits))``
  with the image-image matrix of position-averaged visual features (``fnac_loss3``). Softmax is
  row-wise; L1 is the mean over the B x B entries; the targets are not detached (as in the code).
- TNE (true-negative enhancement, the code's ``fnac_loss2``): the diagonal (own-audio) map is
  min-max normalised, positions above 0.6 form the sounding region, its visual features are
  averaged over all 49 positions (zeros outside) and their similarity matrix is matched to the
  audio-audio one: ``L1(softmax(A A^T / tau), softmax(F F^T / tau))``.
- Total = contrastive + 100 * (fns_audio + tne + fns_visual), temperature tau = 0.03; the
  authors train the first 3 epochs on the contrastive term alone (warm-up, handled by the trainer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TAU = 0.03
FNS_WEIGHT = 100.0
TNE_WEIGHT = 100.0
FOREGROUND_THRESHOLD = 0.6
MINMAX_EPS = 1e-5


def cross_similarity(audio: Tensor, visual: Tensor) -> Tensor:
    """Cosine maps of every image against every audio: ``[B_img, B_aud, H, W]``.

    ``audio`` ``[B, D]`` and ``visual`` ``[B, H, W, D]`` must already be L2-normalised.
    """
    return torch.einsum("nhwc,mc->nmhw", visual, audio)


def pooled_logits(cross: Tensor, tau: float = TAU, pooling: str = "max") -> Tensor:
    """The cross maps pooled over positions, over tau: ``[B_img, B_aud]``.

    ``"max"`` is the authors' (EZ-VSL's) choice: only the strongest position gets a gradient,
    which on small objects and untrained projections is usually a background position.
    ``"softmax"`` weights every position by its softmax over the map at temperature tau
    (detached weights): near the max once the map is peaked, but every position learns
    while it is flat.
    """
    flat = cross.flatten(2)
    if pooling == "max":
        return flat.amax(dim=2) / tau
    if pooling == "softmax":
        weights = torch.softmax(flat.detach() / tau, dim=2)
        return (weights * flat).sum(dim=2) / tau
    raise ValueError(f"unknown pooling {pooling!r} (expected 'max' or 'softmax')")


def contrastive_loss(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE with the matching pairs on the diagonal (EZ-VSL / FNAC)."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)


def soft_target_l1(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Mean |softmax(target) - softmax(logits)| over all entries, softmax row-wise."""
    return F.l1_loss(torch.softmax(target_logits, dim=1), torch.softmax(logits, dim=1))


def intra_modal_logits(features: Tensor, tau: float = TAU) -> Tensor:
    """Similarity matrix of one modality within the batch, over tau: ``[B, B]``."""
    return features @ features.t() / tau


def minmax_normalise(maps: Tensor) -> Tensor:
    """Each ``[H, W]`` map scaled to [0, 1] (the code's +1e-5 keeps a flat map finite)."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low + MINMAX_EPS)


def foreground_features(visual: Tensor, own_maps: Tensor, threshold: float = FOREGROUND_THRESHOLD) -> Tensor:
    """Mean over all positions of the visual features inside the localised region: ``[B, D]``.

    ``own_maps`` ``[B, H, W]`` are the maps of each image with its own audio; the region is
    where the min-max normalised map exceeds ``threshold``. The hard mask carries no gradient,
    the features do (as in the authors' code).
    """
    mask = (minmax_normalise(own_maps) > threshold).to(visual.dtype)
    return (visual * mask.unsqueeze(-1)).flatten(1, 2).mean(dim=1)


def fnac_loss(
    audio: Tensor,
    visual: Tensor,
    *,
    tau: float = TAU,
    use_fns: bool = True,
    use_tne: bool = True,
    fns_weight: float = FNS_WEIGHT,
    tne_weight: float = TNE_WEIGHT,
    foreground_threshold: float = FOREGROUND_THRESHOLD,
    contrastive_only: bool = False,
    pooling: str = "max",
) -> dict[str, Tensor]:
    """All FNAC terms from L2-normalised embeddings ``audio [B,D]`` and ``visual [B,H,W,D]``.

    Returns ``loss`` (the total to backprop) and the unweighted parts ``contrastive``,
    ``fns_audio``, ``fns_visual``, ``tne``. A switched-off part is reported as 0 and left out
    of the total; ``contrastive_only`` (the authors' warm-up) leaves FNS and TNE out of the
    total but still reports them.
    """
    cross = cross_similarity(audio, visual)
    logits = pooled_logits(cross, tau, pooling)
    zero = logits.new_zeros(())
    parts = {"contrastive": contrastive_loss(logits), "fns_audio": zero, "fns_visual": zero, "tne": zero}
    audio_logits = intra_modal_logits(audio, tau)
    if use_fns:
        visual_logits = intra_modal_logits(visual.mean(dim=(1, 2)), tau)
        parts["fns_audio"] = soft_target_l1(audio_logits, logits)
        parts["fns_visual"] = soft_target_l1(visual_logits, logits)
    if use_tne:
        batch = torch.arange(audio.shape[0], device=audio.device)
        region = foreground_features(visual, cross[batch, batch], foreground_threshold)
        parts["tne"] = soft_target_l1(audio_logits, intra_modal_logits(region, tau))
    total = parts["contrastive"]
    if not contrastive_only:
        total = total + fns_weight * (parts["fns_audio"] + parts["fns_visual"]) + tne_weight * parts["tne"]
    return {"loss": total, **parts}
