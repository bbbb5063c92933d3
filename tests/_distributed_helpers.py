"""Shared pieces of the distributed tests: torchrun command lines and a tiny labelled feature cache."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests._train_helpers import T, make_videos, write_cache

REPO = Path(__file__).resolve().parents[1]
CLASSES = 4


def env() -> dict[str, str]:
    """The test's environment with the repo importable and one thread per process (2 shared cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(nproc: int, *args: str) -> list[str]:
    """``torchrun --standalone`` on localhost, through the interpreter of this test run."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def avepipe(*args: str) -> list[str]:
    return [sys.executable, "-m", "avepipe", *args]


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=timeout)


def labelled_cache(root: Path, videos: int, dtype: str = "float16") -> tuple[Path, Path]:
    """A float16 cache of learnable synthetic videos and its AVE-style Annotations.txt."""
    audio, visual, segments, _ = make_videos(videos, CLASSES, seed=5)
    ids = [f"vid{i:03d}" for i in range(videos)]
    cache = write_cache(root / "feats.h5", ids, audio, visual, dtype=dtype)
    lines = []
    for vid, labels in zip(ids, segments):
        events = np.flatnonzero(labels != CLASSES)
        if len(events):
            lines.append(f"class {labels[events[0]]}&{vid}&good&{events[0]}&{events[-1] + 1}")
        else:
            lines.append(f"class 0&{vid}&good&0&0")
    (root / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n" + "\n".join(lines) + "\n")
    return cache, root / "Annotations.txt"


__all__ = ["REPO", "T", "env", "torchrun", "avepipe", "run", "labelled_cache"]
