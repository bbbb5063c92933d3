"""FeatureDataset: streaming and in-memory give the same batches; labels; background caches; workers;
repeated AVE ids looked up by their file id."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avepipe.errors import UserError
from avepipe.data.annotations import Annotations, Event, VideoRecord, load_ave_annotations
from avepipe.data.dataset import FeatureDataset, already_batched

from tests._train_helpers import T, write_cache
from tests._paths import AVE_DIR

CLASSES = ["dog", "bell"]


def _annotations():
    return Annotations([VideoRecord("v0", "v0", (Event(2, 5, "dog"),)),
                        VideoRecord("v1", "v1", (Event(0, 10, "bell"),)),
                        VideoRecord("v2", "v2", ())], CLASSES)


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(3, T, 128)).astype(np.float32)
    visual = rng.normal(size=(3, T, 7, 7, 512)).astype(np.float32)
    main = write_cache(root / "main.h5", ["v0", "v1", "v2"], audio, visual, dtype="float16")
    noisy = write_cache(root / "noisy.h5", ["n0", "n1"], audio[:2], visual[:2])
    return main, noisy, audio, visual


def test_streaming_and_in_memory_batches_are_identical(caches):
    main, _, audio, visual = caches
    ann = _annotations()
    streamed = FeatureDataset([main], ann, ["v2", "v0", "v1"], in_memory=False)
    held = FeatureDataset([main], ann, ["v2", "v0", "v1"], in_memory=True)
    assert not streamed.in_memory and held.in_memory
    a, b = streamed.__getitems__([1, 2]), held.__getitems__([1, 2])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert a["visual"].dtype == torch.float32 and a["visual"].shape == (2, T, 7, 7, 512)
    # float16 storage: values are the written ones to half precision
    np.testing.assert_allclose(a["audio"][0].numpy(), audio[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(a["segment_labels"][0].numpy(), [2, 2, 0, 0, 0, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(a["video_label"][1].numpy(), [0, 1, 0])
    item = streamed[0]
    np.testing.assert_array_equal(item["segment_labels"].numpy(), np.full(T, 2))
    np.testing.assert_array_equal(item["video_label"].numpy(), [0, 0, 1])


def test_in_memory_batch_is_numpys_exact_float32_of_the_stored_rows_in_any_order(caches):
    main, _, audio, visual = caches
    held = FeatureDataset([main], _annotations(), ["v0", "v1", "v2"], in_memory=True)
    order = [2, 0, 2, 1]                                # unordered, one video twice
    batch = held.batch(order)
    stored = held.batch(order, features_dtype=None)
    assert batch["visual"].dtype == torch.float32 and stored["visual"].dtype == torch.float16
    np.testing.assert_array_equal(batch["visual"].numpy(), visual[order].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(batch["audio"].numpy(), audio[order].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(stored["visual"].numpy(), visual[order].astype(np.float16))
    np.testing.assert_array_equal(batch["index"].numpy(), order)


def test_background_cache_videos_are_background_everywhere(caches):
    main, noisy, _, _ = caches
    ds = FeatureDataset([main], _annotations(), ["v0"], in_memory=False, background_caches=[noisy])
    assert len(ds) == 3 and ds.keys[1:] == ["background:n0", "background:n1"]
    batch = ds.__getitems__([1, 2])
    assert (batch["segment_labels"] == 2).all()
    np.testing.assert_array_equal(batch["video_label"].numpy(), [[0, 0, 1], [0, 0, 1]])


def test_missing_video_is_a_user_error(caches):
    main, _, _, _ = caches
    ann = Annotations([VideoRecord("zz", "zz", ())], CLASSES)
    with pytest.raises(UserError, match="1 annotated videos are not in the cache.*'zz'"):
        FeatureDataset([main], ann, ["zz"])


def test_worker_processes_open_their_own_handles(caches):
    main, _, _, _ = caches
    ds = FeatureDataset([main], _annotations(), ["v0", "v1", "v2"], in_memory=False)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=already_batched)
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [2, 1]
    assert torch.equal(batches[0]["visual"], ds.__getitems__([0, 1])["visual"])


def test_repeated_ave_ids_read_the_file_features_with_their_own_labels(tmp_path):
    """Real Annotations.txt lists some videos twice (keys ``ID`` and ``ID#2``); a cache extracted from the
    video files holds ``ID`` once, and both rows must train on it, each with its own labels."""
    ann = load_ave_annotations(AVE_DIR / "Annotations.txt")
    first, second = "0qvQIuQoODo", "0qvQIuQoODo#2"
    assert ann.source_id(second) == first
    rng = np.random.default_rng(3)
    audio = rng.normal(size=(1, T, 128)).astype(np.float32)
    visual = rng.normal(size=(1, T, 7, 7, 512)).astype(np.float32)
    cache = write_cache(tmp_path / "stems.h5", [first], audio, visual)
    ds = FeatureDataset([cache], ann, [first, second], in_memory=False)
    batch = ds.__getitems__([0, 1])
    for i in range(2):
        np.testing.assert_array_equal(batch["audio"][i].numpy(), audio[0])
    male, female = (ann.class_index[n] for n in ("Male speech, man speaking", "Female speech, woman speaking"))
    bg = ann.background_index
    np.testing.assert_array_equal(batch["segment_labels"][0].numpy(), [bg, male, male, male] + [bg] * 6)
    np.testing.assert_array_equal(batch["segment_labels"][1].numpy(), [bg, female, female, female] + [bg] * 6)


def test_labels_of_every_batch_order_equal_the_annotations_per_video(tmp_path):
    """The dataset keeps weak labels as class lists and builds [B, C+1] per batch: any batch, in any order,
    equals Annotations.video_label / segment_labels of each video (several events, several classes, none,
    fractional times, background videos)."""
    classes = ["a", "b", "c", "d"]
    records = [VideoRecord("m0", "m0", (Event(0.5, 2.4, "a"), Event(3, 10, "c"))),
               VideoRecord("m1", "m1", ()),
               VideoRecord("m2", "m2", (Event(1.6, 1.9, "b"), Event(4.5, 4.51, "d"), Event(8, 9, "b"))),
               VideoRecord("m3", "m3", (Event(-3, 20, "d"),))]
    ann = Annotations(records, classes)
    rng = np.random.default_rng(5)
    audio = rng.normal(size=(6, T, 128)).astype(np.float32)
    visual = rng.normal(size=(6, T, 7, 7, 512)).astype(np.float32)
    main = write_cache(tmp_path / "m.h5", ["m0", "m1", "m2", "m3"], audio[:4], visual[:4])
    noisy = write_cache(tmp_path / "n.h5", ["n0", "n1"], audio[4:], visual[4:])
    ds = FeatureDataset([main], ann, ["m3", "m0", "m2", "m1"], in_memory=False, background_caches=[noisy])
    background_only = np.eye(len(classes) + 1, dtype=np.float32)[-1]
    for order in ([0, 1, 2, 3, 4, 5], [5, 2, 2, 0], [4], [3, 1]):
        batch = ds.__getitems__(order)
        for row, i in enumerate(order):
            key = ds.keys[i]
            labelled = not key.startswith("background:")
            weak = ann.video_label(key) if labelled else background_only
            np.testing.assert_array_equal(batch["video_label"][row].numpy(), weak)
            strong = ann.segment_labels(key, T) if labelled else np.full(T, len(classes))
            np.testing.assert_array_equal(batch["segment_labels"][row].numpy(), strong)
    assert batch["video_label"].dtype == torch.float32 and batch["segment_labels"].dtype == torch.int64


@pytest.mark.parametrize("seed", range(3))
def test_event_segment_range_is_covers_segment(seed):
    """``segment_range`` (two ceilings) picks exactly the segments ``covers_segment`` (the spec's rule) does."""
    rng = np.random.default_rng(seed)
    for _ in range(500):
        start, end = np.sort(rng.choice([rng.uniform(-2, 12), rng.integers(-2, 12) + rng.choice([0, 0.5])], 2))
        event = Event(float(start), float(end), "x")
        first, stop = event.segment_range()
        assert [t for t in range(-3, 14) if event.covers_segment(t)] == list(range(first, stop)), (start, end)
