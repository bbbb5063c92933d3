"""Whether this CPU computes bf16 natively, and how much faster bf16 VGG-19 ran where the project measured it.

Without native bf16 (AVX512-BF16 or AMX) oneDNN emulates it and bf16 is several times slower
than fp32; with it, faster. The speed-up given is the project's measurement on one such CPU
(``benchmarks/vgg_engines.py``), not a measurement of the user's CPU: the line says so.
"""
from __future__ import annotations

from collections.abc import Iterable

from avepipe.extract.gpu_advice import BF16_DRIFT

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# benchmarks/results/vgg_engines_2026-12-02.jsonl: torch bf16 autocast over fp32 channels-last, the medians
# of 4 alternating rounds (3.34x and 1.40x torch fp32 contiguous), 1 thread.
MEASURED_BF16_SPEEDUP = 2.4
MEASURED_ON = "an AMD EPYC with avx512_bf16"


def native_bf16_flag(flags: Iterable[str]) -> str | None:
    """The first of ``NATIVE_BF16_FLAGS`` among the CPU's ``flags`` (None: bf16 would be emulated)."""
    present = set(flags)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in present), None)


def bf16_line(flags: Iterable[str]) -> str | None:
    """``note: ...`` for an fp32 extraction on a CPU with native bf16 (None where bf16 would be emulated)."""
    flag = native_bf16_flag(flags)
    if flag is None:
        return None
    return (f"note: this CPU computes bf16 natively ({flag}): --precision bf16 ran VGG-19 "
            f"{MEASURED_BF16_SPEEDUP:.1f}x faster than fp32 on {MEASURED_ON} (features drift {BF16_DRIFT})")
