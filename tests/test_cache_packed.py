"""The packed copy of a cache: read exactly like the parts, used only while current, written atomically."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import Annotations, Event, VideoRecord
from avepipe.data.dataset import FeatureDataset, already_batched
from avepipe.data.cache.packed import open_packed, packed_dir
from avepipe.data.cache.packer import pack_cache
from avepipe.errors import UserError
from avepipe.data.cache import CacheWriter

from tests._cache_helpers import CONFIG, make_features

IDS = [f"vid {i:02d}" for i in range(12)]


def _labels(ids):
    return Annotations([VideoRecord(v, v, (Event(0, 2, "a"),)) for v in ids], ["a"])


def _write(path, ids, segments=3):
    with CacheWriter(path, CONFIG, dtype="float16") as writer:
        for vid in ids:
            writer.write(make_features(vid, segments))
    return path


def _batch(dataset, indices):
    return {k: v.numpy() for k, v in dataset.__getitems__(indices).items()}


def test_packed_reads_equal_part_reads(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS)
    plain = FeatureDataset([cache], _labels(IDS), IDS, in_memory=False)
    assert not plain.packed
    pack_cache(cache, progress=False)
    packed = FeatureDataset([cache], _labels(IDS), IDS, in_memory=False)
    assert packed.packed
    order = [7, 0, 11, 3, 3, 5]
    for key, value in _batch(plain, order).items():
        np.testing.assert_array_equal(_batch(packed, order)[key], value)
    expected = make_features("vid 05", 3).visual.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(_batch(packed, [5])["visual"][0], expected)
    held = FeatureDataset([cache], _labels(IDS), IDS, in_memory=True)
    np.testing.assert_array_equal(_batch(held, order)["audio"], _batch(plain, order)["audio"])


def test_dataloader_workers_open_their_own_descriptors(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS)
    pack_cache(cache, progress=False)
    dataset = FeatureDataset([cache], _labels(IDS), IDS, in_memory=False)
    dataset.__getitems__([0])                       # the parent has descriptors open before the fork
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, collate_fn=already_batched, num_workers=2)
    audio = torch.cat([b["audio"] for b in loader]).numpy()
    np.testing.assert_array_equal(audio, _batch(dataset, list(range(len(IDS))))["audio"])


def test_stale_after_a_video_is_added_or_rewritten(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS)
    pack_cache(cache, progress=False)
    assert open_packed(cache, CONFIG.to_json()) is not None
    _write(cache, ["new video"])
    assert open_packed(cache, CONFIG.to_json()) is None
    ids = [*IDS, "new video"]
    dataset = FeatureDataset([cache], _labels(ids), ids, in_memory=False)
    assert not dataset.packed
    np.testing.assert_array_equal(_batch(dataset, [12])["audio"][0],
                                  make_features("new video", 3).audio.astype(np.float16).astype(np.float32))
    pack_cache(cache, progress=False)
    assert FeatureDataset([cache], _labels(ids), ids, in_memory=False).packed
    with CacheWriter(cache, CONFIG, dtype="float16") as writer:    # same id, new features
        writer.write(make_features("vid 03", 3, has_audio=False))
    assert open_packed(cache, CONFIG.to_json()) is None


def test_datasets_sharing_an_open_cache_look_the_packed_copy_up_once_until_it_is_refreshed(tmp_path, monkeypatch):
    from avepipe.data.cache import FeatureCache, reader

    cache = _write(tmp_path / "c.h5", IDS)
    pack_cache(cache, progress=False)
    lookups = []
    monkeypatch.setattr(reader, "open_packed", lambda *args: lookups.append(args) or open_packed(*args))
    opened = FeatureCache(cache)
    train = FeatureDataset([opened], _labels(IDS), IDS[:8], in_memory=False)
    val = FeatureDataset([opened], _labels(IDS), IDS[8:], in_memory=False)
    assert train.packed and val.packed and len(lookups) == 1
    _write(cache, ["new video"])
    opened.refresh()                                 # a new part: the copy is stale and must be looked up again
    assert opened.packed is None and len(lookups) == 2
    assert not FeatureDataset([opened], _labels(IDS), IDS, in_memory=False).packed


def test_uneven_segments_are_refused(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS[:2])
    _write(cache, ["short"], segments=2)
    with pytest.raises(UserError, match=r"c\.h5: video 'vid 00' has 3 segments, 'short' has 2; only caches of "
                                        r"equal-length videos can be packed"):
        pack_cache(cache, progress=False)
    assert not packed_dir(cache).exists()


def test_crash_while_packing_keeps_the_previous_copy(tmp_path, monkeypatch):
    cache = _write(tmp_path / "c.h5", IDS)
    pack_cache(cache, progress=False)
    before = (packed_dir(cache) / "index.json").read_bytes()
    _write(cache, ["new video"])
    from avepipe.data.cache import FeatureCache

    def dies(self, video_id, *args, **kwargs):
        if video_id == "vid 04":
            raise KeyboardInterrupt
        return original(self, video_id, *args, **kwargs)

    original = FeatureCache.read_arrays
    monkeypatch.setattr(FeatureCache, "read_arrays", dies)
    with pytest.raises(KeyboardInterrupt):
        pack_cache(cache, progress=False)
    assert (packed_dir(cache) / "index.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.h5.errors.json", "c.h5.packed", "c.h5.parts"]


def test_packer_killed_mid_write_leaves_nothing_in_the_way(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS)
    leftover = tmp_path / "c.h5.packed.tmp-999999-0badc0de"       # what kill -9 during pack_cache leaves
    leftover.mkdir()
    (leftover / "visual.npy").write_bytes(b"half")
    _write(cache, ["new video"])                                     # a writer still opens the cache
    assert open_packed(cache, CONFIG.to_json()) is None
    pack_cache(cache, progress=False)
    assert not leftover.exists() and open_packed(cache, CONFIG.to_json()) is not None


def test_cache_pack_command(tmp_path):
    cache = _write(tmp_path / "c.h5", IDS[:3])
    result = CliRunner().invoke(main, ["cache", "pack", str(cache)])
    assert result.exit_code == 0, result.output
    assert f"wrote {packed_dir(cache)}" in result.output
    assert np.load(packed_dir(cache) / "visual.npy", mmap_mode="r").shape == (3, 3, 7, 7, 512)
    missing = CliRunner().invoke(main, ["cache", "pack", str(tmp_path / "none.h5")])
    assert missing.exit_code == 2 and "no feature cache here" in missing.output


def test_rows_are_found_by_id_and_an_unsorted_index_is_refused(tmp_path):
    """Rows are looked up by binary search over the packed ids (no dict of 100k entries), which needs them
    sorted: an index.json whose ids are not is refused with one line, not read at wrong rows."""
    import json

    from avepipe.data.cache.packed import PackedCache

    cache = _write(tmp_path / "c.h5", IDS)
    pack_cache(cache, progress=False)
    packed = open_packed(cache, CONFIG.to_json())
    assert packed.rows(["vid 03", "nope", "vid 00", "vid 11"]).tolist() == [3, -1, 0, 11]
    index = json.loads((packed_dir(cache) / "index.json").read_text())
    index["ids"][0], index["ids"][1] = index["ids"][1], index["ids"][0]
    with pytest.raises(UserError, match="index.json: ids are not sorted; delete .* and pack again"):
        PackedCache(packed_dir(cache), index)
