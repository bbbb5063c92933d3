"""The machine a benchmark ran on, printed with every result: figures from different CPUs or loads do not compare."""
from __future__ import annotations

import os
import platform

import torch


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def machine() -> dict:
    """CPU model and flags (from /proc/cpuinfo where it exists), cores, torch build and threads, current load."""
    return {
        "cpu_model": _cpuinfo_field("model name") or platform.processor() or platform.machine(),
        "cpu_flags": _cpuinfo_field("flags").split(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_1min": os.getloadavg()[0],
    }
