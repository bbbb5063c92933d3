"""Sharded extraction under torchrun: kill one rank with SIGKILL, rerun that shard alone, get exactly the
single-process cache (every video once, none lost, none redone)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from avepipe.data.cache import FeatureCache, layout
from avepipe.data.cache.shards import Shard, parse_shard, shard_of
from avepipe.errors import UserError
from tests._distributed_helpers import REPO, avepipe, env, run, torchrun
from tests._extract_helpers import simple_clip

EXTRACT = ["--random-backbones", "0", "--fps", "1", "--segments", "1", "--workers", "0", "--batch-size", "1",
           "--device", "cpu"]
OWN = {0: 2, 1: 8}     # videos per shard: rank 0 finishes early, rank 1 is killed half-way


def test_shard_assignment_depends_on_the_id_alone():
    ids = [f"clip{i}" for i in range(200)]
    owners = [shard_of(v, 3) for v in ids]
    assert all(sum(Shard(k, 3).owns(v) for k in range(3)) == 1 for v in ids)      # disjoint and complete
    assert min(owners.count(k) for k in range(3)) > 40                              # roughly balanced
    assert [shard_of(v, 3) for v in ids[:50]] == owners[:50]                        # adding files moves nothing
    assert parse_shard(" 2/5") == Shard(2, 5)
    for bad in ("5/5", "1", "-1/2", "a/b"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


def _videos(folder: Path) -> list[str]:
    folder.mkdir()
    counts, ids, i = {0: 0, 1: 0}, [], 0
    while counts != OWN:
        vid, i = f"clip{i:02d}", i + 1
        owner = shard_of(vid, 2)
        if counts[owner] < OWN[owner]:
            simple_clip(folder / f"{vid}.mp4", seconds=1.0, fps=2)
            counts[owner] += 1
            ids.append(vid)
    return sorted(ids)


def _rank_pid(agent: int, rank: int) -> int | None:
    """The worker of torchrun agent ``agent`` whose environment says RANK=``rank``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == agent and f"RANK={rank}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def _info(cache: Path) -> dict:
    result = run(avepipe("cache", "info", str(cache), "--json"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_killed_rank_rerun_alone_completes_the_cache(tmp_path):
    ids = _videos(tmp_path / "videos")
    owned1 = [v for v in ids if shard_of(v, 2) == 1]
    reference = tmp_path / "single.h5"
    single = run(avepipe("extract", str(tmp_path / "videos"), "-o", str(reference), *EXTRACT))
    assert single.returncode == 0, single.stderr[-2000:]

    cache = tmp_path / "sharded.h5"
    agent = subprocess.Popen(torchrun(2, "-m", "avepipe", "extract", str(tmp_path / "videos"), "-o", str(cache),
                                      *EXTRACT), cwd=REPO, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    parts = layout.parts_dir(cache)
    wanted1 = {layout.part_name(v) for v in owned1}
    deadline, killed = time.monotonic() + 180, False
    try:
        while time.monotonic() < deadline and agent.poll() is None:
            done1 = wanted1 & set(layout.list_part_names(parts))
            if len(done1) >= 3:
                pid = _rank_pid(agent.pid, 1)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.02)
        output = agent.communicate(timeout=120)[0]
    finally:
        if agent.poll() is None:
            agent.kill()
    assert killed, f"rank 1 finished before it could be killed:\n{output[-2000:]}"
    assert agent.returncode != 0

    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts.iterdir()
              if layout.PART_RE.match(p.name)}
    status = {s["shard"]: s for s in _info(cache)["shards"]}
    assert status["1/2"]["expected"] == OWN[1] and not status["1/2"]["complete"]
    assert 3 <= status["1/2"]["done"] < OWN[1]
    assert set(status["1/2"]["missing"]) == {v for v in owned1 if layout.part_name(v) not in before}

    # torchrun stops the whole job when a rank dies: rerun every shard that is incomplete, each alone.
    for label, shard in status.items():
        if shard["complete"]:
            continue
        rerun = run(avepipe("extract", str(tmp_path / "videos"), "-o", str(cache), *EXTRACT, "--shard", label))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        # a shard killed before its first video finished (rank 0 at times) has nothing "already there"
        already = f", {shard['done']} already there" if shard["done"] else ""
        assert f"extracted {shard['missing_count']} video(s) into {cache} as shard {label}{already}\n" in rerun.stderr

    info = _info(cache)
    assert [s["complete"] for s in info["shards"]] == [True, True]
    assert info["videos"] == len(ids)
    names = sorted(p.name for p in parts.iterdir())
    assert names == sorted(layout.part_name(v) for v in ids)            # one part per video, no temp left
    for name, identity in before.items():                               # finished videos were not redone
        path = parts / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity
    ours, theirs = FeatureCache(cache), FeatureCache(reference)
    assert ours.ids == theirs.ids == ids
    for vid in ids:
        a, b = ours.read(vid), theirs.read(vid)
        np.testing.assert_allclose(a.visual, b.visual, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.audio, b.audio, rtol=1e-5, atol=1e-6)
    text = run(avepipe("cache", "info", str(cache))).stdout
    assert "shards:       2 of 2 complete" in text and f"shard 1/2: {OWN[1]} of {OWN[1]} done" in text
