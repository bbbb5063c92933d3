"""``--preset ave``: Keras' VGG-19 ImageNet weights and Caffe preprocessing in our PyTorch VGG-19.

The released AVE features came from Keras ``VGG19(weights='imagenet')``. Same
architecture as torchvision's, but different weights (converted from Caffe, so
they expect BGR images on 0-255 with the Caffe means subtracted). Loading that
file into ``vgg19_features()`` reproduces those features without TensorFlow.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from avepipe.errors import UserError
from avepipe.extract.vgg19 import per_channel, pixel_row_constants
from avepipe.extract.weights import short_reason

# Caffe/Keras means, in BGR order, on the 0-255 scale.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
KERAS_CONV_LAYERS = tuple(
    f"block{block}_conv{conv}"
    for block, convs in zip(range(1, 6), (2, 2, 4, 4, 4))
    for conv in range(1, convs + 1)
)


def caffe_preprocess(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``[N, H, W, 3]`` -> float BGR ``[N, 3, H, W]`` (channels-last memory), means subtracted, no scaling."""
    mean = pixel_row_constants(CAFFE_BGR_MEAN, frames.shape[2], frames.device)
    return per_channel(frames.flip(-1), lambda rows: rows.sub_(mean))


def _weight_names(group: h5py.Group) -> list[str]:
    """Keras' own ``weight_names`` attribute (possibly split into chunks), else every dataset in the group.

    Keras 1-era files (the canonical notop file) store ``block1_conv1/block1_conv1_W_1:0``;
    Keras 2 files store ``block1_conv1/block1_conv1/kernel:0``. Both list them in ``weight_names``.
    """
    chunks = [group.attrs["weight_names"]] if "weight_names" in group.attrs else []
    index = 0
    while f"weight_names{index}" in group.attrs:
        chunks.append(group.attrs[f"weight_names{index}"])
        index += 1
    names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for chunk in chunks for n in chunk]
    if names:
        return names
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _read_conv(root: h5py.Group, layer: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if layer not in root:
        raise UserError(f"{path}: no layer {layer!r}: not a Keras VGG-19 notop weights file")
    group = root[layer]
    arrays = [np.asarray(group[name]) for name in _weight_names(group)]
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise UserError(f"{path}: layer {layer!r} does not hold one conv kernel and one bias")
    return kernels[0], biases[0]


def load_keras_vgg19_notop(features: nn.Sequential, path: str | Path) -> nn.Sequential:
    """Copy ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` into ``vgg19_features()``.

    Keras kernels are HWIO and, like PyTorch, compute cross-correlation, so the
    only conversion is the transpose to OIHW; 'same' padding of a 3x3 stride-1
    conv is PyTorch's ``padding=1``.
    """
    path = Path(path)
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not an HDF5 file ({short_reason(exc)})") from exc
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        for conv, layer in zip(convs, KERAS_CONV_LAYERS, strict=True):
            kernel, bias = _read_conv(root, layer, path)
            oihw = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
            if oihw.shape != conv.weight.shape or bias.shape != tuple(conv.bias.shape):
                raise UserError(
                    f"{path}: layer {layer!r} kernel {kernel.shape} (HWIO) does not fit VGG-19's "
                    f"{tuple(conv.weight.shape)} (OIHW)"
                )
            with torch.no_grad():
                conv.weight.copy_(oihw)
                conv.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return features
