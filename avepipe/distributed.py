"""torchrun / torch.distributed glue shared by sharded extraction and distributed training.

torchrun starts one process per rank and describes the job in environment
variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT);
this module reads them, starts the process group for training (gloo on CPU,
nccl on CUDA) and splits each *global* batch among the ranks so that N
processes take exactly the optimisation steps one process would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from avepipe.device import select_device, use_device
from avepipe.ranks import Ranks, env_ranks  # noqa: F401  (a job's ranks are part of this module's vocabulary)


def local_device(device: str | None, ranks: Ranks) -> torch.device:
    """This rank's training device (``avepipe.device.select_device``, one GPU per rank), made current."""
    return use_device(select_device(device, ranks, exclusive=True))


def _accepts_device_id() -> bool:
    """``init_process_group(device_id=...)`` exists from torch 2.3 on; setup.cfg allows torch 2.1."""
    import inspect

    return "device_id" in inspect.signature(dist.init_process_group).parameters


def init_process_group(device: torch.device) -> None:
    """Join the job's process group (env:// rendezvous from torchrun): nccl for CUDA, gloo otherwise.

    NCCL binds the group to ``device`` (set current first, and passed as ``device_id`` where this
    torch has it, which lets NCCL connect eagerly instead of guessing the GPU at the first collective).
    """
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", **({"device_id": device} if _accepts_device_id() else {}))
    else:
        dist.init_process_group("gloo")


def active_ranks() -> Ranks:
    """The ranks of the initialised process group, or a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    env = env_ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), env.local_rank, env.local_world_size)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sum over all ranks (float64, so counts stay exact); identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return [float(v) for v in values]
    # gloo reduces CPU tensors, nccl CUDA ones: the tensor lives where the model does.
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


@dataclass(frozen=True)
class LocalBatch:
    """This rank's part of one global batch.

    ``real`` is how many of ``indices`` belong to the global batch; a rank whose
    share is empty (global batch smaller than the world) gets one stand-in sample
    (``real == 0``) so it still joins the gradient all-reduce, with weight 0.
    """

    indices: list[int]
    real: int
    global_size: int

    @property
    def share(self) -> float:
        """This rank's share of the global batch: its mean loss is weighted by it (times the world
        size, which DDP's gradient average divides out), giving the global batch's mean."""
        return self.real / self.global_size


def split_global_batches(order: Sequence[int], batch_size: int, rank: int, world_size: int) -> list[LocalBatch]:
    """Cut ``order`` into global batches of ``batch_size`` (last one shorter) and give ``rank`` its
    contiguous, near-equal chunk of each. Over all ranks the chunks are exactly the global batches.
    """
    plan = []
    for start in range(0, len(order), batch_size):
        batch = list(order[start:start + batch_size])
        chunk = [int(i) for i in np.array_split(np.asarray(batch), world_size)[rank]]
        plan.append(LocalBatch(chunk or batch[:1], len(chunk), len(batch)))
    return plan


class PlannedBatches(Sampler[list[int]]):
    """A DataLoader ``batch_sampler`` that yields the index lists of a precomputed plan."""

    def __init__(self, plan: Sequence[LocalBatch]):
        self.plan = list(plan)

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.indices for batch in self.plan)

    def __len__(self) -> int:
        return len(self.plan)
