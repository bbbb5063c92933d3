"""What a result was computed on: CPU model and flags, usable CPUs, GPUs and the engines torch was built with.

Shared by ``avepipe doctor`` and the benchmarks, whose figures are only comparable on
the same CPU (model, vector extensions) and the same builds. torch is imported only by the
functions that need it: decoder workers read ``usable_cpus`` and must not load torch.
"""
from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Iterable

# Vector extensions that change how fast (and, for bf16, whether natively) the CNNs run on a CPU.
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")     # without one of them oneDNN emulates bf16 (slowly)


def cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of /proc/cpuinfo ('' where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    return cpuinfo_field("flags").split()


def native_bf16_flag(flags: Iterable[str]) -> str | None:
    """The first of ``NATIVE_BF16_FLAGS`` among the CPU's ``flags`` (None: bf16 would be emulated)."""
    present = set(flags)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in present), None)


def gpu_lines() -> list[str]:
    """One line per visible GPU: index, name, memory, compute capability."""
    import torch

    if not torch.cuda.is_available():
        return []
    lines = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        lines.append(f"cuda:{index}: {properties.name}, {properties.total_memory / 2 ** 30:.0f} GiB, "
                     f"compute capability {properties.major}.{properties.minor}")
    return lines


def engines() -> dict[str, str]:
    """The libraries and backends the pipeline can use here, with their versions (or 'no')."""
    import av
    import torch
    import torch.distributed as dist

    found = {
        "torch": torch.__version__,
        "CUDA build": torch.version.cuda or "no",
        "cuDNN": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "no",
        "oneDNN (CPU)": "yes" if torch.backends.mkldnn.is_available() else "no",
        "NCCL": "yes" if dist.is_available() and dist.is_nccl_available() else "no",
        "gloo": "yes" if dist.is_available() and dist.is_gloo_available() else "no",
        "PyAV": av.__version__,
    }
    for module, label in (("tensorflow", "TensorFlow (--audio-backend tfhub)"), ("cv2", "OpenCV (--preset ave)"),
                          ("openvino", "OpenVINO (fp32 CPU engine)")):
        found[label] = "yes" if importlib.util.find_spec(module) is not None else "no"
    return found


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 2
