"""On a machine with CUDA GPUs: every GPU (and every torchrun rank on its own GPU) extracts the CPU's features,
and training resumes on fewer GPUs than it ran on.

Marked ``cuda``: not collected by default (setup.cfg addopts); ``pytest -m cuda`` or
``avepipe doctor --run-tests`` runs them on a GPU machine. The tolerance is the doctor's
(docs/scaling.md#the-tolerance).
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from avepipe import doctor
from avepipe.data.cache import FeatureCache
from tests._distributed_helpers import REPO, avepipe, env, labelled_cache, run, torchrun

pytestmark = pytest.mark.cuda


def _gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


two_gpus = pytest.mark.skipif(_gpus() < 2, reason="needs two GPUs")


def _assert_agrees(ours: np.ndarray, theirs: np.ndarray) -> None:
    a, b = ours.reshape(len(ours), -1).astype(np.float64), theirs.reshape(len(theirs), -1).astype(np.float64)
    cosine = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    assert cosine.min() >= doctor.COSINE_MIN
    assert np.abs(a - b).max() <= doctor.MAX_RELATIVE_ERROR * np.abs(b).max()


def test_every_gpu_extracts_the_cpu_features_whatever_the_batch(tmp_path):
    clip = doctor.make_clip(tmp_path, seconds=3)
    reference = doctor.extract_on(clip, torch.device("cpu"), fps=8)
    for index in range(_gpus()):
        for batch in (3, 32):    # 3: many drains and both staging buffers in turn
            run_ = doctor.extract_on(clip, torch.device("cuda", index), fps=8, batch_size=batch)
            agreement = doctor.compare(run_, reference)
            assert agreement.ok, f"cuda:{index} batch {batch}: {agreement.describe()}"


def _videos(folder):
    folder.mkdir()
    return [doctor.make_clip(folder, seconds=3, variant=i) for i in range(4)]    # every frame of every video differs


@two_gpus
def test_torchrun_ranks_extract_on_their_own_gpus_the_cpu_features(tmp_path):
    _videos(tmp_path / "videos")
    common = ["--random-backbones", "0", "--fps", "8", "--workers", "1"]
    cpu = run(avepipe("extract", str(tmp_path / "videos"), "-o", str(tmp_path / "cpu.h5"), *common,
                      "--device", "cpu"))
    assert cpu.returncode == 0, cpu.stderr[-2000:]
    for given in ([], ["--device", "cuda"]):
        cache = tmp_path / f"gpus{len(given)}.h5"
        ddp = run(torchrun(2, "-m", "avepipe", "extract", str(tmp_path / "videos"), "-o", str(cache),
                           *common, *given), timeout=600)
        assert ddp.returncode == 0, ddp.stderr[-3000:]
        ours, theirs = FeatureCache(cache), FeatureCache(tmp_path / "cpu.h5")
        assert ours.ids == theirs.ids
        for vid in ours.ids:
            a, b = ours.read(vid), theirs.read(vid)
            _assert_agrees(a.visual, b.visual)
            _assert_agrees(a.audio, b.audio)


@two_gpus
def test_each_rank_gets_its_own_gpu_and_the_cpu_features():
    result = run(torchrun(2, "-m", "avepipe", "doctor", "--seconds", "1", "--fps", "4"), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rank 0: ranks: 2, on 2 GPU(s): one GPU per rank: ok" in result.stdout


@two_gpus
def test_resume_on_fewer_gpus_than_the_run_used(tmp_path):
    cache, annotations = labelled_cache(tmp_path, 24)
    args = ["train", str(cache), "--annotations", str(annotations), "--batch-size", "6", "--seed", "1",
            "-o", str(tmp_path / "run")]
    first = run(torchrun(2, "-m", "avepipe", *args, "--epochs", "1", "--device", "cuda"), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "last" / "training_state.json").read_text())
    assert state["epoch"] == 1
    # One GPU visible: a checkpoint holding every GPU's RNG state failed here with an IndexError.
    resumed = subprocess.run(avepipe(*args, "--epochs", "2", "--device", "cuda", "--resume"), cwd=REPO,
                             env={**env(), "CUDA_VISIBLE_DEVICES": "0"}, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "last" / "training_state.json").read_text())
    assert state["epoch"] == 2
