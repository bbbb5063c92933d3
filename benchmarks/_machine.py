"""The machine a benchmark ran on, printed with every result: figures from different CPUs or loads do not compare."""
from __future__ import annotations

import os

import torch

from avepipe.machine import cpu_flags, cpu_model


def machine() -> dict:
    """CPU model and flags (from /proc/cpuinfo where it exists), cores, torch build and threads, current load."""
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_1min": os.getloadavg()[0],
    }
