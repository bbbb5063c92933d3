"""Weakly supervised CMBS through the command line with background-only negatives whose visual features
are real (a generated cache, as ``avepipe extract`` of background videos makes one, or the authors'
``visual_feature_noisy.h5`` / ``audio_feature_noisy.h5`` imported with ``cache import-ave``)."""
from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import load_official_splits
from avepipe.localizer import Localizer
from avepipe.models import cmbs
from avepipe.models.checkpoint import load_checkpoint
from avepipe.event.training import predict_dataset
from tests._train_helpers import T, make_videos, write_cache

NAMES = [f"class {k}" for k in range(4)]


def _write_annotations(path, ids, segment_labels):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "start", "end", "label"])
        for vid, labels in zip(ids, segment_labels):
            events = np.flatnonzero(labels != len(NAMES))
            writer.writerow([vid, events[0], events[-1] + 1, NAMES[labels[events[0]]]])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """24 labelled videos and a background cache of 4 background-only videos with their own visual features."""
    root = tmp_path_factory.mktemp("cmbs")
    audio, visual, segments, _ = make_videos(24, seed=0, background_share=0.0)
    ids = [f"vid{i:03d}" for i in range(24)]
    cache = write_cache(root / "features.h5", ids, audio, visual)
    annotations = _write_annotations(root / "labels.csv", ids, segments)
    bg_audio, bg_visual, _, _ = make_videos(4, seed=1, background_share=1.0)
    background = write_cache(root / "background.h5", [f"bg{i}" for i in range(4)], bg_audio, bg_visual)
    run = root / "run"
    result = CliRunner().invoke(main, [
        "train", str(cache), "--annotations", str(annotations), "--model", "cmbs", "--setting", "weakly",
        "--decision", "released-video", "--background-cache", str(background), "-o", str(run), "--epochs", "2",
        "--batch-size", "8", "--seed", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return root, cache, annotations, background, bg_visual, run


def test_background_videos_train_with_their_visual_features(trained):
    root, cache, annotations, background, bg_visual, run = trained
    labels = load_annotations(annotations)
    dataset = FeatureDataset([cache], labels, [], in_memory=False, background_caches=[background])
    items = dataset.__getitems__(list(range(4)))
    assert np.allclose(items["visual"].numpy(), bg_visual, atol=0) and items["visual"].abs().sum() > 0
    assert (items["segment_labels"] == len(NAMES)).all()
    assert items["video_label"].tolist() == [[0.0] * len(NAMES) + [1.0]] * 4


def test_cli_trains_evaluates_and_localizes_weakly_cmbs(trained):
    root, cache, annotations, background, _, run = trained
    history = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(history) == 2 and "train_video" in history[0]
    state = json.loads((run / "last" / "training_state.json").read_text())
    config = state["train_config"]
    assert (config["lr_milestones"], config["clip_grad_norm"], config["decision"]) == ([10, 20, 40], 0.5,
                                                                                       "released-video")
    evaluated = CliRunner().invoke(main, ["evaluate", str(run / "best"), str(cache), "--annotations",
                                          str(annotations), "--json", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    net, info = load_checkpoint(run / "best")
    assert type(net) is cmbs.WeaklyCMBSNet and net.decision == "released-video"
    labels = load_annotations(annotations, classes=info.class_names)
    test_ids = load_official_splits(run / "splits", labels)["test"]
    predicted, _, truth = predict_dataset(net, FeatureDataset([cache], labels, test_ids))
    assert report["segment_accuracy"] == pytest.approx(float((predicted == truth).mean()))
    assert (predicted == predicted[:, :1]).all()            # released-video: one label per video

    localizer = Localizer(net, None, None, info.extractor, info.class_names, segments=T, device="cpu")
    result = localizer.localize_features(FeatureCache(cache).read(labels.source_id(test_ids[0])), explain=True)
    assert result.labels == [info.class_names[k] for k in predicted[0]]
    assert result.explain["attention"].shape == (T, 7, 7)


def test_the_authors_noisy_files_import_with_both_modalities(tmp_path):
    """Their layout: visual_feature_noisy.h5 [N,10,7,7,512], audio_feature_noisy.h5 [N,10,128] float64,
    no annotation rows."""
    rng = np.random.default_rng(0)
    visual = rng.random((3, T, 7, 7, 512), dtype=np.float32)
    audio = rng.normal(size=(3, T, 128))
    for name, data in (("visual_feature_noisy.h5", visual), ("audio_feature_noisy.h5", audio)):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("avadataset", data=data)
    result = CliRunner().invoke(main, ["cache", "import-ave", str(tmp_path), "--visual-file", "visual_feature_noisy.h5",
                                       "--audio-file", "audio_feature_noisy.h5", "--row-ids", "-o",
                                       str(tmp_path / "noisy.h5")])
    assert result.exit_code == 0, result.output
    cache = FeatureCache(tmp_path / "noisy.h5")
    assert cache.ids == ["row_00000", "row_00001", "row_00002"]
    features = cache.read("row_00002")
    assert features.has_video and features.has_audio
    assert np.array_equal(features.visual, visual[2])
    stored = cache.read_arrays("row_00002", ("audio",), dtype=None)[0]
    assert stored.dtype == np.float64 and np.array_equal(stored, audio[2])
