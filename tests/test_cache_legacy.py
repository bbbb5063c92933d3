"""Caches written by an earlier avepipe (tests/data/legacy_cache/, made at commit 0ea6ca6) still open, unchanged."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.cache import CacheWriter, FeatureCache
from tests._cache_helpers import CONFIG, make_features
from tests._legacy_cache import CACHES, ERRORS, EXTRA_ATTRS, LEGACY_DIR, SHARD_IDS, legacy_features

CASES = [(name, video) for name, (_, videos) in CACHES.items() for video in videos]


@pytest.mark.parametrize("name, video", CASES, ids=[f"{n}:{v.video_id}" for n, v in CASES])
def test_legacy_arrays_and_metadata(name, video):
    dtype = CACHES[name][0]
    stored = {"visual": dtype, "audio": dtype} if isinstance(dtype, str) else dtype
    expected = legacy_features(video)
    cache = FeatureCache(LEGACY_DIR / name)
    got = cache.read(video.video_id)
    for key in ("visual", "audio"):
        want = getattr(expected, key).astype(stored[key]).astype(np.float32)
        np.testing.assert_array_equal(getattr(got, key), want)
        assert getattr(got, key).dtype == np.float32
    raw_visual, raw_audio = cache.read_arrays(video.video_id, dtype=None)
    assert (raw_visual.dtype.name, raw_audio.dtype.name) == (stored["visual"], stored["audio"])
    assert (got.video_id, got.segments, got.has_audio, got.has_video) == \
        (video.video_id, video.segments, video.has_audio, video.has_video)
    assert (got.duration, got.source_fps, got.notes) == (expected.duration, expected.source_fps, expected.notes)
    summary = cache.summary(video.video_id)
    assert (summary.segments, summary.has_audio, summary.has_video) == \
        (video.segments, video.has_audio, video.has_video)
    for key, value in EXTRA_ATTRS.get(video.video_id, {}).items():
        assert cache.attrs(video.video_id)[key] == value


@pytest.mark.parametrize("name", sorted(CACHES))
def test_legacy_cache_info_and_provenance(name):
    dtype, videos = CACHES[name]
    cache = FeatureCache(LEGACY_DIR / name)
    assert cache.ids == sorted(v.video_id for v in videos)
    assert cache.config == CONFIG
    info = cache.info()
    assert info["dtype"] == ({"visual": dtype, "audio": dtype} if isinstance(dtype, str) else dtype)
    assert info["errors_last_run"] == len(ERRORS.get(name, ()))
    assert info["segments_total"] == sum(v.segments for v in videos)
    shards = [(s["shard"], s["expected"], s["done"], s["missing"]) for s in info["shards"]]
    if name in SHARD_IDS:
        owned = SHARD_IDS[name]
        assert shards == [("0/1", len(owned), len(videos), [i for i in owned if i not in cache])]
    else:
        assert shards == []


@pytest.mark.parametrize("name", sorted(CACHES))
@pytest.mark.parametrize("as_json", [False, True])
def test_cache_info_prints_what_the_old_version_printed(name, as_json, monkeypatch):
    """``cache info`` output captured from the 0ea6ca6 command on the same files (run in their folder)."""
    monkeypatch.chdir(LEGACY_DIR)
    result = CliRunner().invoke(main, ["cache", "info", *(["--json"] if as_json else []), name])
    assert result.exit_code == 0, result.stderr
    suffix = "json" if as_json else "txt"
    assert result.stdout == (LEGACY_DIR / f"{name[:-3]}.info.{suffix}").read_text(encoding="utf-8")


def test_new_writer_appends_to_a_legacy_cache(tmp_path):
    """The same extractor and dtype append to an old cache; the old videos read back unchanged."""
    name = "f32.h5"
    for entry in LEGACY_DIR.iterdir():
        if entry.name.startswith(name):
            (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, tmp_path / entry.name)
    with CacheWriter(tmp_path / name, CONFIG, CACHES[name][0]) as writer:
        writer.write(make_features("zeta", 2))
    cache = FeatureCache(tmp_path / name)
    assert cache.ids == sorted([*(v.video_id for v in CACHES[name][1]), "zeta"])
    np.testing.assert_array_equal(cache.read("alpha").visual, legacy_features(CACHES[name][1][0]).visual)
    assert json.loads((tmp_path / f"{name}.errors.json").read_text(encoding="utf-8")) == []
