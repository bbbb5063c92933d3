"""kill -9 at arbitrary moments: finished videos survive, files open, a rerun completes without duplicates."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py

from avepipe.data.cache import FeatureCache
from avepipe.data.cache.layout import parts_dir
from tests._cache_helpers import make_features

REPO = Path(__file__).resolve().parents[1]
ALL_IDS = [f"video {i:03d} ü" for i in range(60)]

# Writes every id not yet done, printing each one after write() returned.
# index_interval=0 rewrites the index after every video, so kills also land mid-index-rewrite.
WRITER_SCRIPT = """
import sys
from avepipe.data.cache import CacheWriter
from tests._cache_helpers import CONFIG, make_features
ids = [f"video {i:03d} ü" for i in range(60)]
with CacheWriter(sys.argv[1], CONFIG, index_interval=0) as writer:
    for video_id in ids:
        if video_id not in writer.done_ids:
            writer.write(make_features(video_id, segments=2))
            print(video_id, flush=True)
print("DONE", flush=True)
"""


def _run_writer(cache: Path, kill_after: int | None, delay: float) -> list[str]:
    """Run the writer; SIGKILL it ``delay`` s after it reported ``kill_after`` videos. Returns reported ids."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(cache)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, encoding="utf-8", env=os.environ.copy())
    reported = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line == "DONE":
            break
        reported.append(line)
        if kill_after is not None and len(reported) >= kill_after:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    reported += [line.rstrip("\n") for line in proc.stdout if line.rstrip("\n") != "DONE"]
    proc.wait(timeout=60)
    if kill_after is not None:
        assert proc.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    else:
        assert proc.returncode == 0
    return reported


def _check_cache(cache: Path, reported: list[str]) -> FeatureCache:
    with h5py.File(cache, "r") as f:                  # the index always opens
        assert f.attrs["format"] == "avepipe-feature-cache"
    reader = FeatureCache(cache)
    assert set(reported) <= set(reader.ids)
    for video_id in reported:
        assert reader.read(video_id).visual.tobytes() == make_features(video_id, segments=2).visual.tobytes()
    return reader


def test_kill_minus_9_never_loses_reported_videos(tmp_path):
    cache = tmp_path / "feats.h5"
    reported: list[str] = []
    # Kill points: right after a report, and a few ms later (mid part write / mid index rewrite).
    for kill_after, delay in [(3, 0.0), (4, 0.004), (5, 0.011), (4, 0.002), (6, 0.007)]:
        reported += _run_writer(cache, kill_after, delay)
        _check_cache(cache, reported)
    assert len(reported) == len(set(reported)), "a finished video was written twice"
    before = set(FeatureCache(cache).ids)             # reported ones plus any finished just before a kill
    final_run = _run_writer(cache, None, 0.0)
    assert before.isdisjoint(final_run) and before | set(final_run) == set(ALL_IDS), \
        "the rerun must write exactly the missing videos"
    reported += final_run
    reader = _check_cache(cache, reported)
    assert reader.ids == sorted(ALL_IDS)
    assert len([p for p in parts_dir(cache).iterdir() if not p.name.startswith(".")]) == len(ALL_IDS)
    with h5py.File(cache, "r") as f:
        assert sorted(f["ids"].asstr()[()]) == sorted(ALL_IDS) and len(f["videos"]) == len(ALL_IDS)
    leftovers = [p for p in list(parts_dir(cache).iterdir()) + list(tmp_path.iterdir()) if p.name.startswith(".tmp-")]
    assert leftovers == [], f"temp files of killed writers were not cleaned up: {leftovers}"
