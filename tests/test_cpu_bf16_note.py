"""The fp32-on-CPU note: shown only where bf16 is native, with the measured speed-up; silent elsewhere."""
import json
from pathlib import Path

from avepipe.extract.cpu_advice import MEASURED_BF16_SPEEDUP, bf16_line, native_bf16_flag

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "vgg_engines_2026-12-02.jsonl"


def test_native_bf16_flag_prefers_amx_and_needs_one_of_the_two():
    assert native_bf16_flag(["avx2", "avx512f"]) is None
    assert native_bf16_flag(["avx512_bf16", "avx512f"]) == "avx512_bf16"
    assert native_bf16_flag(["avx512_bf16", "amx_bf16"]) == "amx_bf16"


def test_note_on_native_bf16_cpu_names_the_flag_and_the_speed_up():
    assert bf16_line(["fpu", "avx512_bf16"]) == (
        "note: this CPU computes bf16 natively (avx512_bf16): --precision bf16 ran VGG-19 2.4x faster than "
        "fp32 on an AMD EPYC with avx512_bf16 (features drift cosine >= 0.99997, max relative error 0.012)")


def test_no_note_where_bf16_is_emulated():
    assert bf16_line(["avx2", "avx512f"]) is None


def test_measured_speed_up_is_the_recorded_benchmark_ratio():
    engines = json.loads(RESULT.read_text().splitlines()[-1])["engines"]
    ratio = engines["torch_bf16_autocast"]["speed_over_reference"] / \
        engines["torch_fp32_channels_last"]["speed_over_reference"]
    assert round(ratio, 1) == MEASURED_BF16_SPEEDUP
