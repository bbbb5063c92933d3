"""VGG-19 up to pool5 with torchvision's ImageNet weights and preprocessing."""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from avepipe.errors import UserError
from avepipe.extract.weights import short_reason

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    """The convolutional part of VGG-19 through pool5: exactly ``torchvision.models.vgg19().features``.

    Built with torchvision's own ``make_layers(cfgs["E"])`` rather than
    ``vgg19().features`` so the unused 120M-parameter classifier is never allocated.
    """
    return make_layers(cfgs["E"], batch_norm=False)


@functools.lru_cache(maxsize=None)
def pixel_row_constants(values: tuple[float, ...], width: int, device: torch.device) -> torch.Tensor:
    """Per-channel ``values`` repeated for each of ``width`` pixels: a float32 ``[width * C]`` row, made once.

    Frames are ``[N, H, W, C]``: against a whole pixel row, each arithmetic pass over a batch runs
    along long contiguous rows instead of broadcasting a ``[1, C, 1, 1]`` tensor whose innermost
    dimension in memory is 3 channels long (4x slower on CPU; the same operations, so the same bits).
    Made per batch, it was a blocking host-to-device copy before every batch on a GPU. (A normal
    tensor even when first asked for under ``inference_mode``, so it serves autograd code too.)
    """
    with torch.inference_mode(False):
        return torch.tensor(values, dtype=torch.float32, device=device).repeat(width)


def per_channel(frames: torch.Tensor, operations: Callable[[torch.Tensor], None]) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` -> float ``[N, C, H, W]`` (channels-last memory), ``operations`` applied in place
    to its ``[N * H, W * C]`` pixel rows (see ``pixel_row_constants``)."""
    images = frames.contiguous().float()
    operations(images.view(-1, images.shape[2] * images.shape[3]))
    # The NHWC -> NCHW permute of a contiguous batch *is* channels-last memory: no copy.
    return images.permute(0, 3, 1, 2)


def imagenet_preprocess(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` (channels-last memory), torchvision's normalisation."""
    mean = pixel_row_constants(IMAGENET_MEAN, frames.shape[2], frames.device)
    std = pixel_row_constants(IMAGENET_STD, frames.shape[2], frames.device)
    return per_channel(frames, lambda rows: rows.div_(255.0).sub_(mean).div_(std))


def load_torchvision_vgg19(features: nn.Sequential, path: str | Path) -> nn.Sequential:
    """Load the ``features.*`` tensors of a torchvision VGG-19 state dict (e.g. ``vgg19-dcbb9e9d.pth``).

    The file is memory-mapped, so the classifier's 480 MB of the 548 MB are never read, and the
    tensors are assigned rather than copied: ``features`` may be built on the meta device
    (``vgg19_features()`` under ``torch.device("meta")``), skipping a random initialisation that
    would be overwritten.
    """
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise UserError(f"{path}: cannot read VGG-19 weights ({short_reason(exc)})") from exc
    if not isinstance(state_dict, dict):
        raise UserError(f"{path}: not a VGG-19 state dict (found {type(state_dict).__name__})")
    conv_part = {k.removeprefix("features."): v for k, v in state_dict.items() if k.startswith("features.")}
    expected = {name: tuple(t.shape) for name, t in features.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in conv_part.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise UserError(f"{path}: not torchvision VGG-19 weights (features.{wrong[0]} missing or mis-shaped)")
    features.load_state_dict(conv_part, strict=True, assign=True)
    return features
