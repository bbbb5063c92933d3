"""Keep the memory a training step frees for the next step (glibc), instead of handing it back to the OS.

glibc returns every block above its mmap threshold (at most 32 MB by default) to the kernel when it
is freed; an event model's step allocates and frees hundreds of MB of such blocks (PSP: the AVGA
activations of a 128-video batch are 128 MB each), so every step page-faults them back in, zeroed.
On the 2-core VM of docs/benchmarks.md that was a quarter of a PSP step's CPU time, all of it system
time. With both thresholds raised, freed blocks stay in the heap and later steps reuse them (for the
first few steps the heap still grows until its free blocks fit the new ones): the process keeps its
peak memory (a training run reaches it at every step anyway); the numbers computed do not change.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc malloc.h
KEEP_UP_TO = 1 << 30                            # blocks up to 1 GiB come from the heap; their memory stays


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where that is not possible (no glibc)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_UP_TO)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
