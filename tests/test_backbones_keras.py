"""--preset ave: a Keras-layout notop file in our PyTorch VGG-19 equals Keras' own computation."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from avepipe.errors import UserError
from avepipe.extract.backbones import VisualEncoder
from avepipe.extract.keras_vgg19 import caffe_preprocess, load_keras_vgg19_notop
from avepipe.extract.vgg19 import vgg19_features

from benchmarks._backbones_helpers import (
    caffe_numpy,
    conv_same_hwio,
    numpy_vgg19_pool5,
    random_keras_weights,
    write_keras_notop,
)


@pytest.fixture(scope="module")
def keras_weights():
    return random_keras_weights(seed=11)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory, keras_weights):
    return write_keras_notop(tmp_path_factory.mktemp("keras") / "notop.h5", keras_weights, "keras1")


def _pool5(path, image: np.ndarray) -> np.ndarray:
    encoder = VisualEncoder(load_keras_vgg19_notop(vgg19_features(), path), caffe_preprocess, device="cpu")
    return encoder.encode(image[None])[0]


def test_first_conv_equals_numpy_convolution(legacy_file, keras_weights, image):
    features = load_keras_vgg19_notop(vgg19_features(), legacy_file)
    with torch.no_grad():
        ours = features[0](caffe_preprocess(torch.from_numpy(image[None])))[0].permute(1, 2, 0).numpy()
    reference = conv_same_hwio(caffe_numpy(image), *keras_weights["block1_conv1"])
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-2)  # values ~ 1e2


def test_pool5_equals_numpy_vgg19(legacy_file, keras_weights, image):
    ours = _pool5(legacy_file, image)
    reference = numpy_vgg19_pool5(image, keras_weights)
    assert ours.shape == reference.shape == (1, 1, 512)
    assert np.abs(reference).max() > 1.0  # a live signal, not all zeros
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-3 * np.abs(reference).max())


def test_keras1_and_keras2_layouts_give_identical_features(tmp_path, legacy_file, keras_weights, image):
    newer = write_keras_notop(tmp_path / "notop2.h5", keras_weights, "keras2")
    with h5py.File(newer) as f:  # the newer layout really nests the datasets
        assert "kernel:0" in f["block1_conv1"]["block1_conv1"]
    assert np.array_equal(_pool5(legacy_file, image), _pool5(newer, image))


def test_missing_layer_is_named(tmp_path, keras_weights):
    partial = {k: v for k, v in keras_weights.items() if k != "block4_conv3"}
    path = write_keras_notop(tmp_path / "partial.h5", partial)
    with pytest.raises(UserError, match="block4_conv3"):
        load_keras_vgg19_notop(vgg19_features(), path)


def test_not_hdf5_is_a_user_error(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not hdf5")
    with pytest.raises(UserError, match="not an HDF5 file"):
        load_keras_vgg19_notop(vgg19_features(), path)
