"""The random-number states a training checkpoint keeps: torch (CPU), this process's own GPU, NumPy, Python.

Only the GPU the process trains on is saved and restored. Saving every visible GPU's
state (``get_rng_state_all``) made a rank restore states of GPUs that belong to other
ranks, and failed with an IndexError when the run resumed on a machine with fewer GPUs.
Files written before hold ``rng.cuda.N`` for every GPU N; the entry of the resuming
device's index is used, and none at all when there is no such entry.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def capture(device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors for safetensors, JSON-able dict)`` of the current states; the GPU's only when ``device`` is one."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return tensors, {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(py_state), gauss_next]}


def restore(tensors: dict[str, torch.Tensor], info: dict, device: torch.device) -> None:
    """Set the states ``capture`` saved; the GPU state goes to ``device`` (if it is a GPU and one was saved)."""
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda":
        state = tensors.get("rng.cuda", tensors.get(f"rng.cuda.{device.index or 0}"))
        if state is not None:
            torch.cuda.set_rng_state(state, device)
    kind, keys, pos, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, py_state, gauss_next = info["python"]
    random.setstate((version, tuple(py_state), gauss_next))
