"""Encoders: weight resolution offline, random-backbone provenance and determinism, hash checks."""
from __future__ import annotations

import dataclasses
import hashlib
import sys

import numpy as np
import pytest
import torch

import avepipe.extract.weights as weights
from avepipe.errors import UserError
from avepipe.extract.backbones import build_encoders, build_encoders_for
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.weights import KERAS_VGG19_NOTOP, TORCHVISION_VGG19, VGGISH, resolve_weights, weights_identity

from benchmarks._backbones_helpers import random_keras_weights, write_keras_notop

FRAME = np.random.default_rng(3).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
WAVE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 16000)).astype(np.float32)  # 1.5 s


@pytest.fixture
def offline(monkeypatch):
    """A downloader that fails like a machine without network, recording what it was asked for."""
    calls = []

    def no_network(url, destination, hash_prefix):
        calls.append((url, destination))
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights, "download_file", no_network)
    return calls


@pytest.mark.parametrize("spec", [TORCHVISION_VGG19, KERAS_VGG19_NOTOP, VGGISH], ids=lambda s: s.filename)
def test_offline_without_weights_is_one_clear_error(offline, spec):
    with pytest.raises(UserError) as caught:
        resolve_weights(spec)
    message = str(caught.value)
    assert "\n" not in message
    for part in (spec.filename, str(spec.cache_path), f"pass {spec.argument} PATH", spec.env_var,
                 "--random-backbones SEED"):
        assert part in message
    assert offline == [(spec.url, spec.cache_path)]


def test_build_encoders_offline_fails_before_any_work(offline):
    with pytest.raises(UserError, match=r"vggish-10086976\.pth.*--random-backbones SEED"):
        build_encoders(device="cpu")


def test_explicit_path_then_env_var_then_cache(tmp_path, monkeypatch, offline):
    given, from_env = tmp_path / "given.pth", tmp_path / "env.pth"
    given.write_bytes(b"a")
    from_env.write_bytes(b"b")
    monkeypatch.setenv("AVEPIPE_VGGISH_WEIGHTS", str(from_env))
    assert resolve_weights(VGGISH, given) == given
    assert resolve_weights(VGGISH) == from_env
    monkeypatch.delenv("AVEPIPE_VGGISH_WEIGHTS")
    VGGISH.cache_path.parent.mkdir(parents=True)
    VGGISH.cache_path.write_bytes(b"c")
    assert resolve_weights(VGGISH) == VGGISH.cache_path
    assert offline == []  # nothing was downloaded


def test_missing_explicit_or_env_file_is_named(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"nope\.pth: .* not found \(given by vgg_weights\)$"):
        resolve_weights(TORCHVISION_VGG19, tmp_path / "nope.pth")
    monkeypatch.setenv("AVEPIPE_KERAS_VGG19_WEIGHTS", str(tmp_path / "gone.h5"))
    with pytest.raises(UserError, match=r"gone\.h5.*AVEPIPE_KERAS_VGG19_WEIGHTS"):
        resolve_weights(KERAS_VGG19_NOTOP)


def test_identity_of_a_non_canonical_file_is_its_sha256(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"x" * 3_000_000)  # several read blocks
    expected = "sha256:" + hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert weights_identity(KERAS_VGG19_NOTOP, path) == expected
    assert weights_identity(TORCHVISION_VGG19, path) == expected


@pytest.fixture(scope="module")
def seeded():
    """Random backbones with seed 3 and their outputs on a fixed frame and waveform."""
    before = torch.random.get_rng_state()
    visual, audio, config = build_encoders(random_seed=3, device="cpu", fps=8, segments=2)
    after = torch.random.get_rng_state()
    return config, visual.encode(FRAME), audio.encode(WAVE, 2), torch.equal(before, after)


def test_random_backbones_are_recorded(seeded):
    config, visual_out, audio_out, _ = seeded
    assert config == ExtractorConfig(
        visual_preset="torchvision", visual_weights="random:3", audio_backbone="vggish-torch",
        audio_weights="random:3", fps=8, segments=2,
    )
    assert config.is_random
    assert visual_out.shape == (1, 7, 7, 512) and visual_out.dtype == np.float32
    assert audio_out.shape == (2, 128) and audio_out.dtype == np.float32
    assert visual_out.std() > 0 and audio_out.std() > 0


def test_random_init_leaves_global_rng_alone(seeded):
    assert seeded[3]


def test_same_seed_same_features_other_seed_other_features(seeded):
    config, visual_out, audio_out, _ = seeded
    visual, audio, rebuilt = build_encoders_for(config, device="cpu")
    assert rebuilt == config
    assert np.array_equal(visual.encode(FRAME), visual_out)
    assert np.array_equal(audio.encode(WAVE, 2), audio_out)
    other_visual, other_audio, other = build_encoders(random_seed=4, device="cpu")
    assert other.visual_weights == "random:4"
    assert not np.allclose(other_visual.encode(FRAME), visual_out)
    assert not np.allclose(other_audio.encode(WAVE, 2), audio_out)


def test_compute_precision_is_part_of_the_identity(seeded):
    config = seeded[0]
    _, _, half = build_encoders(random_seed=3, device="cpu", fps=8, segments=2, precision="bf16")
    assert half.visual_precision == "bf16" and config.visual_precision == "fp32"
    assert half.differences(config) == ["visual_precision: 'bf16' vs 'fp32'"]
    assert build_encoders_for(half, device="cpu")[2] == half


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    return write_keras_notop(tmp_path_factory.mktemp("ave") / "notop.h5", random_keras_weights(seed=2))


def test_recorded_hash_must_match_the_weights_file(keras_file):
    recorded = ExtractorConfig(visual_preset="ave", visual_weights="sha256:" + "0" * 64, audio_weights="random:1")
    with pytest.raises(UserError) as caught:
        build_encoders_for(recorded, vgg_weights=str(keras_file), device="cpu")
    message = str(caught.value)
    assert str(keras_file) in message and "sha256:" + "0" * 64 in message
    assert "give the original file with vgg_weights or AVEPIPE_KERAS_VGG19_WEIGHTS" in message   # no flag


def test_matching_hash_rebuilds_the_extractor(keras_file):
    identity = weights_identity(KERAS_VGG19_NOTOP, keras_file)
    recorded = ExtractorConfig(visual_preset="ave", visual_weights=identity, audio_weights="random:1", segments=10)
    visual, _, rebuilt = build_encoders_for(recorded, vgg_weights=str(keras_file), device="cpu")
    assert rebuilt == recorded
    assert visual.encode(FRAME).shape == (1, 7, 7, 512)


def test_tfhub_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # makes `import tensorflow_hub` fail
    with pytest.raises(UserError, match=r"--audio-backend tfhub needs the optional 'tfhub' extra.*avepipe\[tfhub\]"):
        build_encoders(audio_backend="tfhub", device="cpu")


def test_bad_choices_are_user_errors():
    with pytest.raises(UserError, match="unknown preset 'caffe'"):
        build_encoders(preset="caffe", random_seed=0)
    with pytest.raises(UserError, match="--audio-backend torch"):
        build_encoders(audio_backend="tfhub", random_seed=0)
    with pytest.raises(UserError, match="unknown audio backbone"):
        build_encoders_for(dataclasses.replace(ExtractorConfig(), audio_backbone="panns"))


def test_torchvision_weights_file_gives_the_maps_of_those_weights(tmp_path):
    """A torchvision-layout VGG-19 file (features.* and classifier.*): only the convolutional part is
    used, memory-mapped into a network built without initialising it, with the maps of a plainly
    loaded torchvision VGG-19 features module."""
    import torchvision

    from avepipe.extract.vggish import VGGish

    reference = torchvision.models.vgg19().features.eval()
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(8, 4)      # ignored: never read into the network
    path, vggish = tmp_path / "vgg19-user.pth", tmp_path / "vggish-user.pth"
    torch.save(state, path)
    torch.save(VGGish().state_dict(), vggish)
    visual, _, config = build_encoders(vgg_weights=str(path), vggish_weights=str(vggish), device="cpu",
                                       engine="torch-eager")
    assert config.visual_weights == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    assert {p.device.type for p in visual.features.parameters()} == {"cpu"}
    ours = visual.encode(FRAME)
    with torch.no_grad():
        expected = reference(visual.preprocess(torch.from_numpy(FRAME)).contiguous()).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    broken = tmp_path / "not-vgg.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, broken)
    with pytest.raises(UserError, match="not-vgg.pth: not torchvision VGG-19 weights"):
        build_encoders(vgg_weights=str(broken), vggish_weights=str(vggish), device="cpu", engine="torch-eager")
