"""`avepipe doctor` on this CPU-only machine: what it checks, what it says it could not, its exit status."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe import doctor
from avepipe.commands.doctor import doctor as doctor_command
from avepipe.extract.cpu_engine import batch_size_for, openvino_installed


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine: the cuda tests check the doctor there")
def test_doctor_runs_on_a_cpu_and_says_what_it_could_not_check():
    result = CliRunner().invoke(doctor_command, ["--seconds", "1", "--fps", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("CPU: ") and "usable CPU(s); avx2 " in lines[0]
    assert lines[1].startswith("engines: torch ") and "PyAV" in lines[1]
    assert lines[2] == "GPUs: none visible to this process"
    assert lines[3] == "clip: 1 s generated video, 1 frames/s sampled, random backbones (seed 0)"
    batch = batch_size_for("openvino" if openvino_installed() else "torch-jit")    # the CPU engine's own
    assert lines[4].startswith(f"cpu fp32 batch {batch}: ") and lines[4].endswith(" frames/s")
    assert lines[5] == (f"cpu fp32 batch 3 vs cpu fp32 batch {batch}: cosine 1.000000, max relative error 0.00e+00, "
                        "decoded frames byte-identical: ok")
    assert lines[6:] == [
        "not checked: GPU features against the CPU's, and GPU frames/s (no GPU visible)",
        "not checked: one GPU per rank (not started by torchrun: run it as torchrun --nproc-per-node N -m avepipe "
        "doctor)",
        "not checked: the `cuda` tests (give --run-tests)",
        "result: ok"]


def test_disagreeing_features_exit_non_zero(monkeypatch):
    report = doctor.Report(["cuda:1 fp32 batch 32: ...: FAIL"], [], ok=False)
    monkeypatch.setattr(doctor, "diagnose", lambda seconds, fps, log: report)
    result = CliRunner().invoke(doctor_command, [])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "result: FAIL (features or devices disagree: see above)"


def _run(visual: np.ndarray, digest: str = "frames") -> doctor.DeviceRun:
    audio = np.linspace(-1, 1, 3 * 128, dtype=np.float32).reshape(3, 128)
    return doctor.DeviceRun("run", torch.device("cpu"), visual, audio, digest, 48, 1.0)


def test_agreement_against_the_documented_tolerance():
    rng = np.random.default_rng(0)
    visual = rng.uniform(0, 4, size=(3, 7, 7, 512)).astype(np.float32)
    reference = _run(visual)
    same = doctor.compare(_run(visual.copy()), reference)
    assert same.ok and abs(same.cosine - 1) < 1e-12 and same.max_relative_error == 0 and same.same_frames
    close, far = visual.copy(), visual.copy()
    close[1, 2, 3, 4] += 4 * 0.5 * doctor.MAX_RELATIVE_ERROR
    far[1, 2, 3, 4] += 4 * 2 * doctor.MAX_RELATIVE_ERROR
    assert doctor.compare(_run(close), reference).ok
    agreement = doctor.compare(_run(far), reference)
    assert not agreement.ok and abs(agreement.max_relative_error - 2 * doctor.MAX_RELATIVE_ERROR) < 1e-6
    swapped = visual[[1, 0, 2]]    # maps of other frames: what a half-finished copy would give
    assert doctor.compare(_run(swapped), reference).cosine < doctor.COSINE_MIN
    assert not doctor.compare(_run(visual.copy(), "other frames"), reference).ok
    assert not dataclasses.replace(doctor.compare(_run(visual), reference), same_frames=False).ok


def test_ranks_sharing_a_gpu_or_disagreeing_fail():
    assert doctor.judge_ranks([(True, 11), (True, 22)]) == (["ranks: 2, on 2 GPU(s): one GPU per rank: ok"], True)
    assert doctor.judge_ranks([(True, 11), (True, 22), (True, 11), (True, 11)]) == (
        ["ranks: 4, on 2 GPU(s): FAIL: ranks 0, 2, 3 share a GPU"], False)
    assert doctor.judge_ranks([(True, 11), (False, 22)]) == (
        ["ranks: 2, on 2 GPU(s): one GPU per rank: ok", "FAIL: features disagree on rank(s) 1"], False)
    assert doctor.judge_ranks([(True, -1), (True, -1)]) == (["ranks: 2, none on a GPU"], True)
