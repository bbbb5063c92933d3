"""Whether ``--precision bf16`` would be faster on this CPU, and by how much: measured here, not assumed.

Without native bf16 (AVX512-BF16 or AMX) oneDNN emulates it and bf16 is several times slower
than fp32. With it, it depends on the CPU: VGG-19 ran 2.4x faster in bf16 on an AMD EPYC with
avx512_bf16, but 0.6-0.7x (slower) on an Intel Xeon with avx512_bf16 and no AMX
(``benchmarks/vgg_engines.py``, docs/benchmarks.md). So where the flag is present one VGG-19
convolution is timed in both precisions (about a second on a busy CPU) and the note is shown only
when bf16 was clearly faster, with the speed-up measured on this CPU.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import torch

from avepipe.extract.gpu_advice import BF16_DRIFT
from avepipe.machine import cpu_flags, native_bf16_flag

WORTH_SAYING = 1.1          # a smaller speed-up is within the noise of one short probe
# One of VGG-19's convolution shapes (256 -> 256 channels, 3 x 3) at 28 x 28: about 0.5 GFLOP per run.
_PROBE_CHANNELS, _PROBE_SIZE = 256, 28


def bf16_speedup_here(rounds: int = 3) -> float:
    """fp32 time over bf16 time of one VGG-19 convolution on this CPU (medians of alternating rounds)."""
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(_PROBE_CHANNELS, _PROBE_CHANNELS, 3, padding=1).eval().requires_grad_(False)
    images = torch.rand(1, _PROBE_CHANNELS, _PROBE_SIZE, _PROBE_SIZE, generator=generator)
    images = images.contiguous(memory_format=torch.channels_last)
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for round_ in range(rounds + 1):            # round 0 warms up (oneDNN builds its kernels)
            for bf16 in (False, True):
                started = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    conv(images)
                if round_:
                    times[bf16].append(time.perf_counter() - started)
    return statistics.median(times[False]) / statistics.median(times[True])


def bf16_line(flags: Iterable[str], speedup: float | None = None, advice: str = "--precision bf16") -> str | None:
    """``note: ...`` for fp32 VGG-19 on a CPU where bf16 is native and measured faster; None otherwise.

    ``speedup`` is ``bf16_speedup_here()``, measured only when needed (a native flag) if not given.
    """
    flag = native_bf16_flag(flags)
    if flag is None:
        return None
    if speedup is None:
        speedup = bf16_speedup_here()
    if speedup < WORTH_SAYING:
        return None
    return (f"note: this CPU computes bf16 natively ({flag}) and a VGG-19 convolution ran {speedup:.1f}x faster "
            f"in bf16 than in fp32 here: {advice} (features drift {BF16_DRIFT})")


def bf16_note(device: torch.device | str, precision: str, preset: str, advice: str = "--precision bf16") -> str | None:
    """``bf16_line`` for this CPU where it applies: fp32 VGG-19 on the CPU, not ``--preset ave`` (exact fp32)."""
    if torch.device(device).type != "cpu" or precision != "fp32" or preset == "ave":
        return None
    return bf16_line(cpu_flags(), advice=advice)
