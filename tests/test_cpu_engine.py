"""The CPU engine of VGG-19 (extract/cpu_engine.py): same maps as torch fp32, recorded, never identity."""
from __future__ import annotations

import functools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from avepipe.data.cache import CacheSet, CacheWriter
from avepipe.errors import UserError
from avepipe.extract.backbones import VisualEncoder, build_encoders, build_encoders_for
from avepipe.extract import cpu_engine
from avepipe.extract.cpu_engine import choose_engines, openvino_installed, prepare
from avepipe.extract.provenance import ExtractorConfig
from avepipe.extract.vgg19 import vgg19_features

from tests._cache_helpers import CONFIG, make_features

FRAMES = np.random.default_rng(3).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)


def _maps(engine: str, precision: str = "fp32") -> np.ndarray:
    visual, _, config = build_encoders(random_seed=0, device="cpu", precision=precision, engine=engine)
    assert config.visual_engine == visual.engine
    assert visual.batch_size != 1       # the engine traces one frame; batches of any size run
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        return visual.encode(FRAMES)


@functools.lru_cache(maxsize=None)
def _reference_maps() -> np.ndarray:
    """torch fp32 on NCHW-contiguous memory, the module as written: the reference of every exact engine."""
    visual, _, _ = build_encoders(random_seed=0, device="cpu", engine="torch-eager")
    with torch.inference_mode():
        images = visual.preprocess(torch.from_numpy(FRAMES)).contiguous()
        return visual.features(images).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("engine", ["auto", "openvino", "torch-jit", "torch-eager"])
def test_every_exact_engine_is_within_1e_5_of_torch_fp32(engine):
    if engine == "openvino":
        pytest.importorskip("openvino", reason="the optional OpenVINO engine (avepipe[cpu-engines], in the dev extra)")
    reference = _reference_maps()
    maps = _maps(engine)
    assert maps.shape == (2, 7, 7, 512)
    assert np.abs(maps - reference).max() / np.abs(reference).max() < 1e-5


def test_the_bf16_jit_engine_computes_bf16_autocast_maps():
    reference, eager, jit = _reference_maps(), _maps("torch-eager", "bf16"), _maps("torch-jit", "bf16")
    drift = np.abs(jit - reference).max() / np.abs(reference).max()
    assert 1e-4 < drift < 0.05                          # bf16, not fp32 in disguise
    assert np.abs(jit - eager).max() / np.abs(reference).max() < 1e-3


def test_auto_prefers_openvino_for_fp32_on_cpu_then_jit_and_runs_eager_on_a_gpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(cpu_engine, "openvino_installed", lambda: True)
    assert choose_engines("auto", cpu, "fp32") == ["openvino", "torch-jit", "torch-eager"]
    assert choose_engines("auto", cpu, "bf16") == ["openvino", "torch-jit", "torch-eager"]
    assert choose_engines("auto", cpu, "fp16") == ["torch-jit", "torch-eager"]
    monkeypatch.setattr(cpu_engine, "openvino_installed", lambda: False)
    assert choose_engines("auto", cpu, "fp32") == ["torch-jit", "torch-eager"]
    assert choose_engines("auto", torch.device("cuda", 0), "fp32") == ["torch-eager"]


def test_engine_choices_that_cannot_run_say_why(monkeypatch):
    monkeypatch.setattr(cpu_engine, "openvino_installed", lambda: False)
    cpu = torch.device("cpu")
    with pytest.raises(UserError, match=r"--engine openvino needs the openvino package: pip install 'avepipe\[cpu-engines\]'"):
        choose_engines("openvino", cpu, "fp32")
    with pytest.raises(UserError, match="--engine openvino runs fp32 and bf16 only"):
        choose_engines("openvino", cpu, "fp16")
    with pytest.raises(UserError, match="--engine torch-jit runs on the CPU only"):
        choose_engines("torch-jit", torch.device("cuda", 0), "fp32")
    with pytest.raises(UserError, match="unknown engine 'onnx'"):
        choose_engines("onnx", cpu, "fp32")


class _Untraceable(nn.Module):
    def forward(self, images):
        raise RuntimeError("cannot be traced")


def test_auto_falls_back_to_eager_when_no_engine_builds_and_an_explicit_one_says_why():
    module = _Untraceable()
    assert prepare(module, "auto", torch.device("cpu"), "fp32") == (module, "torch-eager")
    with pytest.raises(UserError, match="--engine torch-jit: cannot build VGG-19 with it here .*cannot be traced"):
        prepare(module, "torch-jit", torch.device("cpu"), "fp32")


def test_openvino_bf16_only_where_the_cpu_computes_bf16(monkeypatch):
    pytest.importorskip("openvino", reason="the optional OpenVINO engine (avepipe[cpu-engines], in the dev extra)")
    monkeypatch.setattr(cpu_engine, "cpu_flags", lambda: ["avx2", "avx512f"])
    with pytest.raises(ValueError, match="no native bf16"):
        cpu_engine.openvino_module(vgg19_features(), "bf16")
    assert prepare(vgg19_features(), "auto", torch.device("cpu"), "bf16")[1] == "torch-jit"


def test_a_module_given_directly_runs_as_written():
    encoder = VisualEncoder(vgg19_features(), lambda x: x, "cpu")
    assert encoder.engine == "torch-eager" and encoder.batch_size == 32
    assert VisualEncoder(vgg19_features(), lambda x: x, "cpu", batch_size=5).batch_size == 5


def test_openvino_batches_of_8_give_the_maps_of_any_other_batch_size():
    pytest.importorskip("openvino", reason="the optional OpenVINO engine (avepipe[cpu-engines], in the dev extra)")
    visual, _, _ = build_encoders(random_seed=0, device="cpu", engine="openvino")
    assert visual.batch_size == 8
    frames = np.random.default_rng(4).integers(0, 256, (10, 224, 224, 3), dtype=np.uint8)
    in_eights = visual.encode(frames)                   # batches of 8 and 2
    visual.batch_size = 10
    assert np.array_equal(in_eights, visual.encode(frames))
    visual.batch_size = 3
    assert np.array_equal(in_eights, visual.encode(frames))


def test_engine_is_recorded_but_not_identity():
    jit = replace(CONFIG, visual_engine="torch-jit")
    assert jit.differences(CONFIG) == []
    assert ExtractorConfig.from_json(jit.to_json()).visual_engine == "torch-jit"
    assert "visual_engine" not in json.loads(CONFIG.to_json())   # default: the JSON older versions read
    assert replace(jit, visual_precision="bf16").differences(CONFIG) == ["visual_precision: 'bf16' vs 'fp32'"]


def test_caches_made_by_different_engines_combine_and_bf16_still_does_not(tmp_path):
    for name, config in (("eager", CONFIG), ("jit", replace(CONFIG, visual_engine="torch-jit")),
                         ("bf16", replace(CONFIG, visual_engine="torch-jit", visual_precision="bf16"))):
        with CacheWriter(tmp_path / f"{name}.h5", config) as writer:
            writer.write(make_features(name))
    both = CacheSet([tmp_path / "eager.h5", tmp_path / "jit.h5"])
    assert sorted(both.ids) == ["eager", "jit"]
    with pytest.raises(UserError, match="visual_precision: 'bf16' vs 'fp32'"):
        CacheSet([tmp_path / "eager.h5", tmp_path / "bf16.h5"])


def test_rebuilding_an_extractor_records_the_engine_that_runs_now():
    recorded = replace(CONFIG, visual_engine="torch-eager")
    visual, _, rebuilt = build_encoders_for(recorded, device="cpu")
    now = "openvino" if openvino_installed() else "torch-jit"
    assert (visual.engine, rebuilt.visual_engine) == (now, now)
    assert rebuilt.differences(recorded) == []
