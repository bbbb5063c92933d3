"""Training pieces written for GPUs, checked on CPU: per-device RNG states, float16 batches made float32 after the copy.

The GPU's RNG functions are replaced by recorders (there is no GPU here); what is checked
is which device's state is saved and restored, and that old checkpoints still resume.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from avepipe import rng_state
from avepipe.data.annotations import Annotations, Event, VideoRecord
from avepipe.data.dataset import FeatureDataset, StorageDtypeBatches
from avepipe.event.training import _to
from tests._train_helpers import T, write_cache


@pytest.fixture
def gpu_rng(monkeypatch):
    """GPU i's RNG state is ``[i]`` (uint8); returns the list of ``(state, device)`` restored."""
    restored: list[tuple[list[int], torch.device]] = []
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device: torch.tensor([torch.device(device).index], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device: restored.append((state.tolist(), torch.device(device))))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                        lambda: pytest.fail("every GPU's RNG state was read; only the process's own is saved"))
    return restored


def test_a_rank_saves_and_restores_its_own_gpu_only(gpu_rng):
    tensors, info = rng_state.capture(torch.device("cuda", 5))
    assert sorted(tensors) == ["rng.cuda", "rng.torch"] and tensors["rng.cuda"].tolist() == [5]
    rng_state.restore(tensors, info, torch.device("cuda", 0))    # resumed where there are fewer GPUs
    assert gpu_rng == [([5], torch.device("cuda", 0))]


def test_old_files_with_every_gpu_resume_on_fewer_gpus(gpu_rng):
    tensors, info = rng_state.capture(torch.device("cpu"))
    assert sorted(tensors) == ["rng.torch"]
    old = {**tensors, **{f"rng.cuda.{i}": torch.tensor([i], dtype=torch.uint8) for i in range(8)}}
    rng_state.restore(old, info, torch.device("cuda", 1))
    assert gpu_rng == [([1], torch.device("cuda", 1))]
    gpu_rng.clear()
    rng_state.restore({**tensors, "rng.cuda.0": torch.tensor([0], dtype=torch.uint8)}, info, torch.device("cuda", 3))
    assert gpu_rng == []    # saved on one GPU, resumed on a fourth: nothing to restore there, no IndexError


def test_cpu_states_round_trip():
    tensors, info = rng_state.capture(torch.device("cpu"))
    expected = (torch.rand(3), np.random.rand(3))
    torch.rand(5), np.random.rand(5)
    rng_state.restore(tensors, info, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_float16_batches_cross_as_float16_and_arrive_as_the_float32_batch(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(2, T, 128)).astype(np.float32)
    visual = rng.normal(size=(2, T, 7, 7, 512)).astype(np.float32)
    cache = write_cache(tmp_path / "half.h5", ["v0", "v1"], audio, visual, dtype="float16")
    annotations = Annotations([VideoRecord("v0", "v0", (Event(2, 5, "dog"),)), VideoRecord("v1", "v1", ())], ["dog"])
    dataset = FeatureDataset([cache], annotations, ["v0", "v1"])
    half = StorageDtypeBatches(dataset).__getitems__([1, 0])
    assert half["visual"].dtype == torch.float16 and half["audio"].dtype == torch.float16
    arrived, reference = _to(half, torch.device("cpu")), dataset.__getitems__([1, 0])
    assert arrived.keys() == reference.keys()
    for key, value in reference.items():
        assert arrived[key].dtype == value.dtype and torch.equal(arrived[key], value), key
