"""The recipe (frame sampling, resize, audio framing) and TF32 are part of a cache's extractor identity."""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from avepipe.errors import UserError
from avepipe.extract.batching import cuda_fp32
from avepipe.data.cache import CacheSet, CacheWriter
from avepipe.extract.backbones import build_encoders
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import AVE_RECIPE, AVE_RELEASED, ExtractorConfig, require_same_extractor

NEW_FIELDS = ("frame_sampling", "frame_resize", "audio_framing", "tf32")


def before_the_recipe(config: ExtractorConfig) -> ExtractorConfig:
    """``config`` as a cache written before the recipe was recorded stores it: without the new fields."""
    stored = json.loads(config.to_json())
    for name in NEW_FIELDS:
        stored.pop(name, None)
    return ExtractorConfig.from_json(json.dumps(stored))


def one_video() -> VideoFeatures:
    return VideoFeatures("v", np.zeros((1, 7, 7, 512), np.float32), np.zeros((1, 128), np.float32), 1.0, 25.0, True)


def test_an_ave_cache_from_before_the_recipe_is_refused_next_to_a_new_one(tmp_path):
    new = build_encoders(preset="ave", random_seed=0, device="cpu")[2]
    old = before_the_recipe(new)
    with CacheWriter(tmp_path / "old.h5", old) as writer:
        writer.write(one_video())
    with CacheWriter(tmp_path / "new.h5", new) as writer:
        writer.write(replace(one_video(), video_id="w"))
    with pytest.raises(UserError) as error:
        CacheWriter(tmp_path / "old.h5", new)
    message = str(error.value)
    assert ("frame_sampling: 'pts' vs 'ave-index'; frame_resize: 'ffmpeg-bilinear' vs 'opencv-linear'; "
            "audio_framing: 'per-second' vs 'ave-clip'; a cache made with --preset ave, or imported from the "
            "released AVE files, before avepipe reproduced the AVE recipe") in message
    with pytest.raises(UserError, match="re-extract or re-import it"):
        CacheSet([tmp_path / "old.h5", tmp_path / "new.h5"])


def test_a_default_cache_from_before_the_recipe_still_matches():
    new = build_encoders(preset="torchvision", random_seed=0, device="cpu")[2]
    assert before_the_recipe(new) == new
    assert not set(NEW_FIELDS) & set(json.loads(new.to_json()))  # the JSON earlier versions wrote and read
    assert set(NEW_FIELDS) <= set(json.loads(replace(new, tf32=True, **AVE_RECIPE).to_json()))


def test_released_ave_features_train_beside_a_preset_ave_cache():
    """`--preset ave --segments 10 --audio-backend tfhub` with the canonical files records AVE_RELEASED."""
    extracted = build_encoders(preset="ave", random_seed=0, device="cpu", segments=10)[2]
    with_canonical_files = replace(extracted, visual_weights=AVE_RELEASED.visual_weights,
                                   audio_backbone="vggish-tfhub", audio_weights="tfhub:google/vggish/1")
    assert with_canonical_files == AVE_RELEASED
    require_same_extractor(AVE_RELEASED, with_canonical_files, "imported", "extracted", ("imported", "extracted"), "")
    assert (AVE_RELEASED.frame_sampling, AVE_RELEASED.frame_resize, AVE_RELEASED.audio_framing) == (
        "ave-index", "opencv-linear", "ave-clip")


def test_tf32_is_off_unless_asked_and_recorded_only_on_cuda():
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    with cuda_fp32():
        assert (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == ("ieee", "ieee")
    with cuda_fp32(allow_tf32=True):
        assert (conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == ("tf32", "tf32")
    assert conv.fp32_precision == before
    assert build_encoders(random_seed=0, device="cpu", allow_tf32=True)[2].tf32 is False  # no TF32 on a CPU
    assert ExtractorConfig(tf32=True).differences(ExtractorConfig()) == ["tf32: True vs False"]


def test_preset_ave_without_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    with pytest.raises(UserError, match=r"--preset ave needs the optional 'ave' extra \(opencv-python-headless, "
                                        r"resampy\): pip install 'avepipe\[ave\]'"):
        build_encoders(preset="ave", random_seed=0, device="cpu")
