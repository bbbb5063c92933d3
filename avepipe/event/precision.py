"""Training arithmetic: fp32 as the authors' code computes, or bf16 autocast, and where bf16 does not pay.

bf16 runs the forward pass and the loss under autocast; weights, optimiser state and every prediction
stay fp32. About 3x faster on CPUs with native bf16 and on GPUs from Ampere on (docs/training.md
"Precision"). Kept apart from the trainer so the command line can offer the choices without loading it.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

from avepipe.errors import UserError
from avepipe.machine import NATIVE_BF16_FLAGS, native_bf16_flag

TRAIN_PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in TRAIN_PRECISIONS:
        raise UserError(f"unknown training precision {precision!r} (expected {' or '.join(TRAIN_PRECISIONS)})")


def require_bf16_gpu(device: torch.device) -> None:
    """``--precision bf16`` on a GPU older than Ampere (compute capability 8.0): one clear error, not a slow
    emulation (``torch.cuda.is_bf16_supported()`` also says yes to emulated bf16)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 arithmetic "
                        "(compute capability < 8.0); train in fp32")


def emulated_bf16_warning(precision: str, device: torch.device, flags: Iterable[str]) -> str | None:
    """A warning for ``--precision bf16`` on a CPU (its ``flags``) that would emulate bf16: slower, not faster."""
    if precision != "bf16" or device.type != "cpu" or native_bf16_flag(flags):
        return None
    return (f"warning: this CPU has no native bf16 ({' or '.join(NATIVE_BF16_FLAGS)}): --precision bf16 is "
            "emulated here and trains slower than fp32")
