"""CacheWriter / FeatureCache: round trip, dtype, provenance, concurrency, resume, odd ids."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.data.cache import CacheWriter, FeatureCache
from avepipe.data.cache.layout import add_external_links, link_name, part_name, parts_dir
from tests._cache_helpers import CONFIG, make_features

REPO = Path(__file__).resolve().parents[1]
ODD_IDS = ["plain", "with space", "Frying (food) ü 日本", "a/b", "50%", "."]


def test_round_trip_all_fields(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        writer.write(make_features("v1", segments=4))
        writer.write(make_features("silent", segments=2, has_audio=False))
    reader = FeatureCache(cache)
    assert reader.ids == ["silent", "v1"] and len(reader) == 2
    assert reader.config == CONFIG
    for video_id in reader.ids:
        got, want = reader.read(video_id), make_features(video_id, 4 if video_id == "v1" else 2,
                                                          has_audio=video_id != "silent")
        assert got.visual.dtype == np.float32 and got.visual.tobytes() == want.visual.tobytes()
        assert got.audio.tobytes() == want.audio.tobytes()
        assert (got.video_id, got.duration, got.source_fps, got.has_audio, got.has_video, got.notes) == \
               (want.video_id, want.duration, want.source_fps, want.has_audio, True, want.notes)
    visual, audio = reader.read_arrays("v1")
    assert visual.shape == (4, 7, 7, 512) and audio.shape == (4, 128)
    (audio_only,) = reader.read_arrays("v1", keys=("audio",))
    np.testing.assert_array_equal(audio_only, audio)
    info = reader.info()
    assert info["videos"] == 2 and info["segments_histogram"] == {"2": 1, "4": 1}
    assert info["no_audio"] == 1 and info["no_video"] == 0 and info["segments_total"] == 6
    assert info["dtype"] == {"visual": "float32", "audio": "float32"} and info["random_backbones"] is True
    assert info["size_bytes"] > 6 * 7 * 7 * 512 * 4


def test_plain_h5py_reads_index_with_external_links(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        for video_id in ODD_IDS:
            writer.write(make_features(video_id))
    with h5py.File(cache, "r") as f:
        assert json.loads(f.attrs["extractor"]) == json.loads(CONFIG.to_json())
        assert sorted(f["ids"].asstr()[()]) == sorted(ODD_IDS)
        for video_id in ODD_IDS:
            group = f["videos"][link_name(video_id)]
            assert group.attrs["video_id"] == video_id
            np.testing.assert_array_equal(group["visual"][()], make_features(video_id).visual)
            assert group["visual"].chunks == (3, 7, 7, 512)   # one video per chunk
    reader = FeatureCache(cache)
    assert reader.ids == sorted(ODD_IDS)
    assert reader.read("Frying (food) ü 日本").audio.tobytes() == make_features("Frying (food) ü 日本").audio.tobytes()
    assert all(name.isascii() and " " not in name for name in (p.name for p in parts_dir(cache).iterdir()))


def test_float16_storage(tmp_path):
    cache = tmp_path / "half.h5"
    with CacheWriter(cache, CONFIG, dtype="float16") as writer:
        writer.write(make_features("v"))
    reader = FeatureCache(cache)
    want = make_features("v")
    assert reader.info()["dtype"] == {"visual": "float16", "audio": "float16"}
    (raw,) = reader.read_arrays("v", keys=("visual",), dtype=None)
    assert raw.dtype == np.float16
    np.testing.assert_array_equal(raw, want.visual.astype(np.float16))
    got = reader.read("v")
    assert got.visual.dtype == np.float32
    np.testing.assert_allclose(got.visual, want.visual, rtol=1e-3, atol=1e-3)
    with pytest.raises(UserError, match="float16.*refusing to append.*float32"):
        CacheWriter(cache, CONFIG)


def test_different_extractor_is_refused_naming_the_field(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        writer.write(make_features("v"))
    with pytest.raises(UserError) as refused:
        CacheWriter(cache, replace(CONFIG, fps=8))
    assert str(refused.value) == (f"{cache}: features from a different extractor than this extraction (cache vs "
                                  f"extraction: fps: 16 vs 8); refusing to mix features; use another cache path "
                                  f"or the same options")
    # also when the index is gone and only parts remain
    cache.unlink()
    with pytest.raises(UserError, match=r"visual_weights: 'random:7' vs 'random:8'"):
        CacheWriter(cache, replace(CONFIG, visual_weights="random:8"))


def test_resume_skips_done_and_never_duplicates(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        assert writer.done_ids == set()
        writer.write(make_features("a"))
        writer.write(make_features("b"))
    with CacheWriter(cache, CONFIG) as writer:
        assert writer.done_ids == {"a", "b"}
        writer.write(make_features("c"))
        writer.write(make_features("a"))   # rewriting replaces, never duplicates
    reader = FeatureCache(cache)
    assert reader.ids == ["a", "b", "c"]
    assert len(list(parts_dir(cache).iterdir())) == 3


def test_reader_sees_videos_while_writer_is_open_same_process(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG, index_interval=3600) as writer:
        writer.write(make_features("first"))
        reader = FeatureCache(cache)            # index not rewritten since open: parts are the truth
        assert reader.ids == ["first"]
        writer.write(make_features("second"))
        reader.refresh()
        assert reader.ids == ["first", "second"]
        assert reader.read("second").visual.tobytes() == make_features("second").visual.tobytes()
        with h5py.File(cache, "r") as f:        # the index file opens mid-run
            assert f.attrs["format"] == "avepipe-feature-cache"


def test_reader_in_another_process_while_writer_runs(tmp_path):
    cache = tmp_path / "feats.h5"
    script = (
        "import sys\n"
        "from avepipe.data.cache import FeatureCache\n"
        "r = FeatureCache(sys.argv[1])\n"
        "print(','.join(r.ids)); print(r.read('w1').visual.sum())\n"
    )
    with CacheWriter(cache, CONFIG, index_interval=3600) as writer:
        writer.write(make_features("w0"))
        writer.write(make_features("w1"))
        out = subprocess.run([sys.executable, "-c", script, str(cache)], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        assert out[0] == "w0,w1"
        assert float(out[1]) == pytest.approx(float(make_features("w1").visual.sum()), rel=1e-4)


def test_temp_files_are_ignored_and_errors_recorded(tmp_path):
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        writer.write(make_features("ok"))
        writer.record_error("/videos/bad clip.mp4", "truncated MP4")
        (parts_dir(cache) / ".tmp-otherhost-1-abcd-v-0123.h5").write_bytes(b"half a file")
    assert FeatureCache(cache).ids == ["ok"]
    errors = json.loads(cache.with_name("feats.h5.errors.json").read_text())
    assert errors == [{"path": "/videos/bad clip.mp4", "reason": "truncated MP4"}]
    assert FeatureCache(cache).info()["errors_last_run"] == 1


def test_bad_features_and_missing_cache(tmp_path):
    with CacheWriter(tmp_path / "c.h5", CONFIG) as writer:
        bad = make_features("v")
        bad.audio = bad.audio[:2]
        with pytest.raises(ValueError, match="audio has shape"):
            writer.write(bad)
    with pytest.raises(UserError, match="no feature cache here"):
        FeatureCache(tmp_path / "nothing.h5")
    (tmp_path / "other.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="other.h5: cannot open as HDF5"):
        FeatureCache(tmp_path / "other.h5")


def _visual_bytes(args):
    reader, video_id = args
    return reader.read_arrays(video_id, keys=("visual",))[0].tobytes()


def test_reader_is_usable_in_forked_workers(tmp_path):
    import multiprocessing

    cache = tmp_path / "feats.h5"
    ids = [f"v{i}" for i in range(6)]
    with CacheWriter(cache, CONFIG) as writer:
        for video_id in ids:
            writer.write(make_features(video_id))
    reader = FeatureCache(cache)
    reader.read("v0")                      # the parent has used HDF5 before forking, as a training script would
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(_visual_bytes, [(reader, v) for v in ids])
    assert got == [make_features(v).visual.tobytes() for v in ids]


def test_index_links_are_those_h5py_makes(tmp_path):
    """The index's external links are created through h5py's low-level call (fast at 100k): each has the
    name, name charset and target that ``group[name] = h5py.ExternalLink(...)`` gives."""
    names = [link_name(v) for v in ODD_IDS]
    targets = [f"feats.h5.parts/{part_name(v)}" for v in ODD_IDS]
    with h5py.File(tmp_path / "fast.h5", "w") as fast, h5py.File(tmp_path / "usual.h5", "w") as usual:
        add_external_links(fast.create_group("videos"), names, [t.encode() for t in targets])
        group = usual.create_group("videos")
        for name, target in zip(names, targets):
            group[name] = h5py.ExternalLink(target, "/")
        groups = fast["videos"], usual["videos"]
        assert sorted(groups[0].keys()) == sorted(groups[1].keys()) == sorted(names)
        for name in names:
            got, want = (g.get(name, getlink=True) for g in groups)
            assert (got.filename, got.path) == (want.filename, want.path)
            infos = [g.id.links.get_info(name.encode()) for g in groups]
            assert infos[0].cset == infos[1].cset and infos[0].type == infos[1].type == h5py.h5l.TYPE_EXTERNAL
        charsets = {groups[0].id.links.get_info(n.encode()).cset for n in names}
    assert charsets == {h5py.h5t.CSET_ASCII, h5py.h5t.CSET_UTF8}       # both kinds of name were compared


def test_resuming_writer_rewrites_the_index_at_open_only_when_parts_changed(tmp_path):
    """Opening a writer on a 100k-video cache whose index is current would rewrite 100k entries for nothing."""
    cache = tmp_path / "feats.h5"
    with CacheWriter(cache, CONFIG) as writer:
        writer.write(make_features("v1"))
    before = cache.stat().st_ino
    CacheWriter(cache, CONFIG)                      # current index: left as it is
    assert cache.stat().st_ino == before
    other = CacheWriter(cache, CONFIG, index_interval=3600)
    other.write(make_features("v2"))                # a part the index does not list yet
    CacheWriter(cache, CONFIG)
    assert cache.stat().st_ino != before
    with h5py.File(cache, "r") as f:
        assert sorted(f["ids"].asstr()[()]) == ["v1", "v2"]
