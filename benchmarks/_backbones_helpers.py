"""Shared helpers for the backbone tests: generated Keras weight files and a NumPy VGG-19."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

# VGG-19 conv layers as Keras names them, with (in, out) channels: from the Keras application source.
KERAS_VGG19_LAYERS = [
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
]
POOL_AFTER = {"block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4"}


def random_keras_weights(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """He-scaled random HWIO kernels and biases for every VGG-19 conv layer."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, cin, cout in KERAS_VGG19_LAYERS:
        kernel = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout)).astype(np.float32)
        weights[name] = (kernel, rng.normal(0, 0.1, cout).astype(np.float32))
    return weights


def write_keras_notop(path: Path, weights: dict[str, tuple[np.ndarray, np.ndarray]], layout: str = "keras1") -> Path:
    """Write ``weights`` the way Keras' ``save_weights`` (HDF5) lays them out.

    ``keras1``: the canonical notop file (``block1_conv1/block1_conv1_W_1:0``);
    ``keras2``: newer Keras (``block1_conv1/block1_conv1/kernel:0``).
    """
    with h5py.File(path, "w") as f:
        names = ["input_1"] + [name for name, _, _ in KERAS_VGG19_LAYERS]
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4" if layout == "keras2" else b"1.2.2"
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
        for name, (kernel, bias) in weights.items():
            group = f.create_group(name)
            if layout == "keras1":
                weight_names = [f"{name}_W_1:0", f"{name}_b_1:0"]
            else:
                weight_names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            group.create_dataset(weight_names[0], data=kernel)
            group.create_dataset(weight_names[1], data=bias)
    return path


def caffe_numpy(image_rgb: np.ndarray) -> np.ndarray:
    """Keras ``preprocess_input(mode='caffe')``: RGB->BGR, minus the BGR means, 0-255, HWC."""
    return image_rgb[..., ::-1].astype(np.float64) - np.array([103.939, 116.779, 123.68])


def conv_same_hwio(image: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Direct 'same' 3x3 correlation of an HWC image with an HWIO kernel (as Keras/TF define Conv2D)."""
    height, width, _ = image.shape
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((height, width, kernel.shape[3])) + bias
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + height, dx:dx + width, :] @ kernel[dy, dx].astype(np.float64)
    return out


def numpy_vgg19_pool5(image_rgb: np.ndarray, weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Keras VGG-19 ``block5_pool`` in NumPy: Caffe preprocessing, conv+ReLU, 2x2 max-pools. HWC out."""
    x = caffe_numpy(image_rgb)
    for name, _, _ in KERAS_VGG19_LAYERS:
        x = np.maximum(conv_same_hwio(x, *weights[name]), 0.0)
        if name in POOL_AFTER:
            h, w, c = x.shape
            x = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))
    return x
