"""The "maps are on the host" event of a batch is recorded on the stream of the batch's own GPU.

Runs on CPU: a stand-in for ``torch.cuda`` records which device and stream every call used.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from avepipe.extract.batching import _Launched, copy_to_host


class _Stream:
    def __init__(self, device: torch.device) -> None:
        self.device = device


class _Event:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def record(self, stream=None) -> None:
        self.calls.append(("record", stream.device if stream is not None else None))

    def synchronize(self) -> None:
        self.calls.append(("synchronize",))


class _StandInCuda:
    """The part of ``torch.cuda`` that ``copy_to_host`` uses; GPU 0 is "current", as when nobody sets it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def is_available(self) -> bool:
        return False  # plain host memory: pinning needs a real GPU

    def current_stream(self, device=None) -> _Stream:
        device = torch.device("cuda", 0) if device is None else torch.device(device)
        self.calls.append(("current_stream", device))
        return _Stream(device)

    @contextlib.contextmanager
    def device(self, device):
        self.calls.append(("enter", torch.device(device)))
        yield
        self.calls.append(("exit", torch.device(device)))

    def Event(self) -> _Event:  # noqa: N802 (torch's name)
        return _Event(self.calls)


def test_copy_event_is_recorded_on_the_stream_of_the_maps_gpu():
    cuda = _StandInCuda()
    second_gpu = torch.device("cuda", 1)
    maps = torch.arange(2 * 7 * 7 * 3, dtype=torch.float32).reshape(2, 7, 7, 3)
    host, event = copy_to_host(maps, second_gpu, cuda)
    assert cuda.calls == [("current_stream", second_gpu), ("enter", second_gpu), ("record", second_gpu),
                          ("exit", second_gpu)]
    np.testing.assert_array_equal(host.numpy(), maps.numpy())


def test_collect_waits_for_the_copy_before_reading():
    cuda = _StandInCuda()
    maps = torch.ones(2, 7, 7, 3)
    host, event = copy_to_host(maps, torch.device("cuda", 3), cuda)
    cuda.calls.clear()
    rows = _Launched(["a", "b"], host, event).collect()
    assert cuda.calls == [("synchronize",)]
    assert [owner for owner, _ in rows] == ["a", "b"]


class _StandInTensorFlow:
    """``tf.config`` as far as ``share_gpus`` uses it, with eight GPUs."""

    def __init__(self) -> None:
        self.visible, self.growth = None, []
        self.config = self
        self.experimental = self

    def list_physical_devices(self, kind: str) -> list[str]:
        return [f"GPU:{i}" for i in range(8)]

    def set_visible_devices(self, devices: list[str], kind: str) -> None:
        self.visible = devices

    def set_memory_growth(self, device: str, grow: bool) -> None:
        self.growth.append((device, grow))


def test_tensorflow_sees_only_the_gpu_of_this_rank_and_grows_into_it():
    from avepipe.extract.tfhub_vggish import share_gpus

    tf = _StandInTensorFlow()
    share_gpus(tf, torch.device("cuda", 3))
    assert tf.visible == ["GPU:3"] and tf.growth == [("GPU:3", True)]
    tf = _StandInTensorFlow()
    share_gpus(tf, torch.device("cpu"))
    assert tf.visible == [] and tf.growth == []
