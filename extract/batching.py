"""Full VGG-19 batches from the frames of any number of videos, at the chosen precision.

Frames are copied into a preallocated uint8 staging batch (pinned on CUDA, so the
host-to-device copy is asynchronous); a batch runs when it is full or when the
caller has nothing else to do. On CUDA two staging batches alternate: batch k+1 is
filled and launched while batch k's maps are still being computed and copied back,
so the GPU does not wait for the host. Each batch's "maps are on the host" event is
recorded on the stream of the batcher's own GPU (``copy_to_host``), so a second GPU
never reads half-copied maps. (The CUDA path was written for GPUs and has run only on
CPU here: the ``cuda`` tests and ``avepipe doctor`` are what check it on a GPU machine.)
"""
from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator

import numpy as np
import torch

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _tf32_switches() -> list[tuple[object, str, object, object]]:
    """(module, attribute, TF32 value, IEEE value) of the cuDNN-convolution and CUDA-matmul switches."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    if hasattr(getattr(cudnn, "conv", None), "fp32_precision"):  # torch >= 2.9
        return [(cudnn.conv, "fp32_precision", "tf32", "ieee"), (matmul, "fp32_precision", "tf32", "ieee")]
    return [(cudnn, "allow_tf32", True, False), (matmul, "allow_tf32", True, False)]


@contextlib.contextmanager
def cuda_fp32(allow_tf32: bool = False) -> Iterator[None]:
    """On CUDA fp32 means fp32: TF32 (10-bit mantissa) convolutions and matmuls only when ``allow_tf32``.

    PyTorch lets cuDNN convolutions use TF32 by default; extraction turns that off
    unless asked (``--tf32``) and records the choice. The previous settings are restored.
    """
    switches = _tf32_switches()
    saved = [getattr(module, name) for module, name, _, _ in switches]
    try:
        for module, name, tf32, ieee in switches:
            setattr(module, name, tf32 if allow_tf32 else ieee)
        yield
    finally:
        for (module, name, _, _), value in zip(switches, saved):
            setattr(module, name, value)


def tune_for(device: torch.device) -> None:
    """On CUDA let cuDNN time its convolution algorithms once and keep the fastest: extraction batches
    are always 224x224 (a new shape costs one more timing). A choice of algorithm, not of precision."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


class _Launched:
    """A batch whose maps are on their way to host memory."""

    def __init__(self, owners: list, maps: torch.Tensor, event) -> None:
        self.owners, self.maps, self.event = owners, maps, event

    def collect(self) -> list[tuple[Hashable, np.ndarray]]:
        if self.event is not None:
            self.event.synchronize()
        maps = self.maps.numpy()
        return [(owner, maps[row]) for row, owner in enumerate(self.owners)]


class FrameBatcher:
    """Collects ``(pixels, owner)`` rows; ``run`` returns ``(owner, map [7, 7, 512] float32)`` as maps arrive.

    ``encoder`` is an ``extract.backbones.VisualEncoder`` (its network, preprocessing and
    device are used); ``precision`` is "fp32", "bf16" or "fp16" (autocast; fp32 default);
    ``allow_tf32`` lets CUDA use TF32 for fp32 work (``cuda_fp32``).
    """

    def __init__(self, encoder, batch_size: int, precision: str = "fp32", allow_tf32: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.encoder = encoder
        self.device = encoder.device
        self.batch_size = batch_size
        self.autocast_dtype = PRECISIONS[precision]
        self.allow_tf32 = allow_tf32
        self.cuda = self.device.type == "cuda"
        self._staging: list[torch.Tensor] = []
        self._current = 0
        self._owners: list[Hashable] = []
        self._launched: _Launched | None = None

    @property
    def pending(self) -> int:
        """Frames added and not yet run."""
        return len(self._owners)

    @property
    def full(self) -> bool:
        return len(self._owners) >= self.batch_size

    def add(self, pixels: np.ndarray, owner: Hashable) -> None:
        """Queue one uint8 frame ``[H, W, 3]``; ``owner`` comes back with its map."""
        if not self._staging:
            shape = (self.batch_size, *pixels.shape)
            self._staging = [torch.empty(shape, dtype=torch.uint8, pin_memory=self.cuda)
                             for _ in range(2 if self.cuda else 1)]
        self._staging[self._current][len(self._owners)].numpy()[...] = pixels  # also takes read-only arrays
        self._owners.append(owner)

    def run(self) -> list[tuple[Hashable, np.ndarray]]:
        """Launch the pending frames; returns the maps that are ready (on CPU: these frames' maps)."""
        if not self._owners:
            return []
        launched = self._launch(self._staging[self._current][:len(self._owners)], self._owners)
        self._owners = []
        if not self.cuda:
            return launched.collect()
        # Launch first, then wait for the previous batch: the GPU always has queued work.
        previous, self._launched = self._launched, launched
        self._current = 1 - self._current  # that staging batch is free once ``previous`` is collected
        return previous.collect() if previous is not None else []

    def drain(self) -> list[tuple[Hashable, np.ndarray]]:
        """Run what is pending and wait for everything launched."""
        ready = self.run()
        if self._launched is not None:
            ready += self._launched.collect()
            self._launched = None
        return ready

    def _launch(self, frames: torch.Tensor, owners: list) -> _Launched:
        encoder = self.encoder
        on_device = torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext()
        with on_device, torch.inference_mode(), cuda_fp32(self.allow_tf32), torch.autocast(
                self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None):
            batch = frames.to(self.device, non_blocking=True)
            images = encoder.preprocess(batch).contiguous(memory_format=torch.channels_last)
            maps = encoder.features(images).permute(0, 2, 3, 1).float()  # channels-last memory: no copy
            if not self.cuda:
                return _Launched(list(owners), maps.contiguous(), None)
            return _Launched(list(owners), *copy_to_host(maps, self.device))


def copy_to_host(maps: torch.Tensor, device: torch.device, cuda=torch.cuda) -> tuple[torch.Tensor, object]:
    """Start copying ``maps`` (on GPU ``device``) to pinned host memory; returns the host tensor and the
    event that fires when the copy is done.

    The event is recorded on ``device``'s own current stream, the one the copy (and the
    network before it) ran on. Recorded with no stream, it would go on the *current
    device's* stream, GPU 0's unless someone called ``set_device``: on any other GPU it
    would fire at once and ``collect`` would read a buffer still being written. ``cuda`` is
    ``torch.cuda``; a test passes a stand-in that records which stream each call used.
    """
    stream = cuda.current_stream(device)
    host = torch.empty(maps.shape, dtype=torch.float32, pin_memory=cuda.is_available())
    with cuda.device(device):
        host.copy_(maps, non_blocking=True)
        event = cuda.Event()
        event.record(stream)
    return host, event
