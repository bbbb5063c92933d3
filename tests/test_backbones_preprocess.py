"""VGG-19 input preprocessing: bit-identical to the reference formulas, channels-last, any frame width."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from avepipe.extract.keras_vgg19 import CAFFE_BGR_MEAN, caffe_preprocess
from avepipe.extract.vgg19 import IMAGENET_MEAN, IMAGENET_STD, imagenet_preprocess

# Every uint8 value in every channel, and a width other than 224 (the row constants depend on it).
FRAMES = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 20, 37, 3), dtype=np.uint8))
FRAMES[0, 0, :, :] = torch.arange(256, dtype=torch.uint8).repeat(3)[:37 * 3].view(37, 3)


@pytest.mark.parametrize("width", [37, 224])
def test_imagenet_preprocess_is_torchvisions_normalize_bit_for_bit(width):
    frames = FRAMES if width == 37 else torch.randint(0, 256, (2, 8, 224, 3), dtype=torch.uint8)
    ours = imagenet_preprocess(frames)
    reference = TF.normalize(frames.permute(0, 3, 1, 2).float().div(255.0), IMAGENET_MEAN, IMAGENET_STD)
    assert ours.shape == reference.shape
    assert torch.equal(ours, reference)
    assert ours.is_contiguous(memory_format=torch.channels_last)


def test_caffe_preprocess_is_keras_caffe_mode_bit_for_bit():
    ours = caffe_preprocess(FRAMES)
    # Keras' imagenet_utils "caffe" mode: RGB -> BGR, then the BGR means subtracted, in float32.
    bgr = FRAMES.numpy()[..., ::-1].astype(np.float32) - np.asarray(CAFFE_BGR_MEAN, np.float32)
    assert np.array_equal(ours.permute(0, 2, 3, 1).numpy(), bgr)
    assert ours.is_contiguous(memory_format=torch.channels_last)


def test_a_non_contiguous_batch_gives_the_same_images():
    wide = torch.cat([FRAMES, FRAMES], dim=2)[:, :, ::2]          # strided view of other frames
    assert not wide.is_contiguous()
    assert torch.equal(imagenet_preprocess(wide), imagenet_preprocess(wide.contiguous()))
