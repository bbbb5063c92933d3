"""The fp32-on-CPU note: shown only where bf16 is native and measured faster on this CPU; silent elsewhere."""
import math

import pytest
import torch

from avepipe.extract.cpu_advice import bf16_line, bf16_note, bf16_speedup_here
from avepipe.machine import native_bf16_flag


def test_native_bf16_flag_prefers_amx_and_needs_one_of_the_two():
    assert native_bf16_flag(["avx2", "avx512f"]) is None
    assert native_bf16_flag(["avx512_bf16", "avx512f"]) == "avx512_bf16"
    assert native_bf16_flag(["avx512_bf16", "amx_bf16"]) == "amx_bf16"


def test_note_on_native_bf16_cpu_names_the_flag_and_the_measured_speed_up():
    assert bf16_line(["fpu", "avx512_bf16"], speedup=2.43) == (
        "note: this CPU computes bf16 natively (avx512_bf16) and a VGG-19 convolution ran 2.4x faster in bf16 "
        "than in fp32 here: --precision bf16 (features drift cosine >= 0.99997, max relative error 0.012)")


def test_no_note_where_native_bf16_was_not_faster():
    # An Intel Xeon with avx512_bf16 and no AMX ran VGG-19 slower in bf16 (docs/benchmarks.md).
    assert bf16_line(["avx512_bf16"], speedup=0.8) is None
    assert bf16_line(["avx512_bf16"], speedup=1.05) is None


def test_no_note_and_no_measurement_where_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr("avepipe.extract.cpu_advice.bf16_speedup_here", lambda: 1 / 0)
    assert bf16_line(["avx2", "avx512f"]) is None


def test_the_probe_gives_a_ratio_of_two_times():
    speedup = bf16_speedup_here(rounds=1)
    assert math.isfinite(speedup) and speedup > 0


@pytest.mark.parametrize("device, precision, preset", [("cuda", "fp32", "torchvision"), ("cpu", "bf16", "torchvision"),
                                                       ("cpu", "fp32", "ave")])
def test_extract_and_localize_say_nothing_where_the_note_does_not_apply(monkeypatch, device, precision, preset):
    """Only fp32 VGG-19 on the CPU is advised; ``--preset ave`` stays exact fp32; nothing is measured otherwise."""
    monkeypatch.setattr("avepipe.extract.cpu_advice.cpu_flags", lambda: ["avx512_bf16"])
    monkeypatch.setattr("avepipe.extract.cpu_advice.bf16_speedup_here", lambda: 1 / 0)
    assert bf16_note(torch.device(device), precision, preset) is None


def test_extract_and_localize_advise_fp32_on_a_cpu_where_bf16_measured_faster(monkeypatch):
    monkeypatch.setattr("avepipe.extract.cpu_advice.cpu_flags", lambda: ["avx512_bf16"])
    monkeypatch.setattr("avepipe.extract.cpu_advice.bf16_speedup_here", lambda: 2.0)
    assert bf16_note("cpu", "fp32", "torchvision", advice="try bf16").endswith(
        "2.0x faster in bf16 than in fp32 here: try bf16 (features drift cosine >= 0.99997, max relative error 0.012)")
