"""Which device this process works on: one rule for extraction, training, source training and localize.

The rule reads the user's ``--device``, the torchrun job of this process (``Ranks``) and
the GPUs it can see, and either names one device with an explicit index or explains in
one line why it cannot. It exists because each command used to pick its GPU its own
way: ``--device cuda`` under torchrun put every extraction rank on GPU 0, and training
asked for GPUs that the process could not see (docs/scaling.md).
"""
from __future__ import annotations

import os

import torch

from avepipe.errors import UserError
from avepipe.ranks import env_ranks

CPU_HINT = "use --device cpu"


def _parse(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device}: not a device name (cpu, cuda or cuda:N)") from None


def _visible(count: int) -> str:
    """How many GPUs this process sees, and through which CUDA_VISIBLE_DEVICES, for the messages."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{count} GPU(s) visible" + (f" (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else "")


def select_device(device: str | torch.device | None = None, ranks=None, exclusive: bool = False) -> torch.device:
    """The device of this process: ``device`` as given (``cuda`` gets an explicit index), else a GPU, else the CPU.

    ``ranks`` (default: this process's torchrun job) decides which GPU a bare ``cuda`` means:
    local rank r takes GPU r of those visible, or GPU 0 when each rank sees exactly one
    (CUDA_VISIBLE_DEVICES per rank). ``cuda:N`` is accepted under torchrun only when it is
    that GPU, so mapping twice gives the same device. ``exclusive`` (NCCL training: one GPU
    per rank) refuses several ranks of one machine sharing a GPU; extraction may share.
    """
    ranks = env_ranks() if ranks is None else ranks
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if device is None and not count:
        return torch.device("cpu")
    parsed = _parse("cuda" if device is None else device)
    if parsed.type != "cuda":
        return parsed
    label = "--device " + ("cuda (the default)" if device is None else str(device))
    if not count:
        raise UserError(f"{label}: this process sees no CUDA GPU (torch {torch.__version__}, "
                        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); {CPU_HINT}")
    sharing = ranks.local_world_size
    if exclusive and sharing > count and not (count == 1 and "CUDA_VISIBLE_DEVICES" in os.environ):
        raise UserError(f"{label}: {sharing} ranks on this machine but {_visible(count)}: NCCL "
                        f"needs one GPU per rank; run --nproc-per-node {count}, give each rank its own GPU "
                        f"with CUDA_VISIBLE_DEVICES, or {CPU_HINT}")
    own = ranks.local_rank % count
    if parsed.index is None:
        return torch.device("cuda", own)
    if parsed.index >= count:
        raise UserError(f"{label}: {_visible(count)}; {CPU_HINT} or a GPU index below {count}")
    if sharing > 1 and parsed.index != own:
        raise UserError(f"{label} under torchrun would put every rank of this machine on one GPU: "
                        f"give --device cuda (local rank {ranks.local_rank} takes cuda:{own})")
    return parsed


def use_device(device: torch.device) -> torch.device:
    """Make ``device`` this process's current CUDA device, so work that names no device lands there too."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device
