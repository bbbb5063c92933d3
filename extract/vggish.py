"""VGGish (Hershey et al. 2017) in PyTorch, state-dict compatible with ``pytorch_vggish.pth``.

The widely used PyTorch conversion of the official TensorFlow checkpoint names
its tensors ``features.{0,3,6,8,11,13}`` and ``embeddings.{0,2,4}``; this module
uses the same layout so that file loads with ``strict=True``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avepipe.errors import UserError
from avepipe.extract.weights import short_reason


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


class VGGish(nn.Module):
    """Input ``[N, 1, 96, 64]`` log-mel examples, output ``[N, 128]`` raw embeddings (no PCA)."""

    def __init__(self) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool2d(kernel_size=2, stride=2)  # noqa: E731
        self.features = nn.Sequential(
            _conv(1, 64), nn.ReLU(inplace=True), pool(),
            _conv(64, 128), nn.ReLU(inplace=True), pool(),
            _conv(128, 256), nn.ReLU(inplace=True),
            _conv(256, 256), nn.ReLU(inplace=True), pool(),
            _conv(256, 512), nn.ReLU(inplace=True),
            _conv(512, 512), nn.ReLU(inplace=True), pool(),
        )
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 128), nn.ReLU(inplace=True),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        maps = self.features(examples)
        # TensorFlow flattens its NHWC maps in (H, W, C) order and the FC weights
        # were learned that way; PyTorch's (C, H, W) order would load silently
        # and give wrong embeddings.
        flat = maps.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(flat)


def check_vggish_state_dict(model: VGGish, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise UserError naming the first problems when ``state_dict`` is not a VGGish state dict."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{source}: not a VGGish state dict (pytorch_vggish.pth layout): "
            f"missing keys {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected keys {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
        )
    for name, shape in expected.items():
        if tuple(state_dict[name].shape) != shape:
            raise UserError(
                f"{source}: {name} has shape {tuple(state_dict[name].shape)}, VGGish needs {shape}"
            )


def load_vggish_weights(model: VGGish, path: str | Path) -> VGGish:
    """Load a ``pytorch_vggish.pth``-style file (tensors only: ``weights_only=True``)."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated, or holds pickled code
        raise UserError(f"{path}: cannot read VGGish weights ({short_reason(exc)})") from exc
    if not isinstance(state_dict, dict):
        raise UserError(f"{path}: not a VGGish state dict (found {type(state_dict).__name__})")
    check_vggish_state_dict(model, state_dict, str(path))
    model.load_state_dict(state_dict, strict=True)
    return model
