"""`avepipe train` / `evaluate` on VGGSound-AVEL files (synthetic stand-in): PSP and CPSP, fully and weakly."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from avepipe.cli import main
from avepipe.data.vggsound import load_vggsound, write_vggsound_files

from tests._train_helpers import T, write_cache

CATEGORIES = [f"category {k}" for k in range(5)]
SPLIT_SIZES = {"train": 40, "val": 10, "test": 10}


def vggsound_stand_in(root, seed=0):
    """VGGSound-AVEL files plus a cache whose features carry each second's label (a class prototype in both
    modalities where the flag is 1, the category seen but silent where it is 0): learnable, labels known."""
    rng = np.random.default_rng(seed)
    videos = []
    for split, count in SPLIT_SIZES.items():
        for i in range(count):
            flags = np.zeros(T, np.int64)
            start = int(rng.integers(0, T - 3))
            flags[start:start + int(rng.integers(2, T - start + 1))] = 1
            videos.append((f"{split}{i:03d}_000010", CATEGORIES[int(rng.integers(len(CATEGORIES)))], split, flags))
    files = write_vggsound_files(root / "vggsound", videos, CATEGORIES)
    audio_proto = rng.normal(0, 1, (len(CATEGORIES), 128)).astype(np.float32)
    visual_proto = np.abs(rng.normal(0, 1, (len(CATEGORIES), 512))).astype(np.float32)
    audio = rng.normal(0, 0.3, (len(videos), T, 128)).astype(np.float32)
    visual = np.abs(rng.normal(0, 0.3, (len(videos), T, 7, 7, 512))).astype(np.float32)
    for i, (_, category, _, flags) in enumerate(videos):
        k = CATEGORIES.index(category)
        visual[i] += 2 * visual_proto[k]
        audio[i] += 2 * flags[:, None] * audio_proto[k]
    cache = write_cache(root / "features.h5", [v[0] for v in videos], audio, visual, dtype="float16")
    return files, cache, videos


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    return vggsound_stand_in(tmp_path_factory.mktemp("vggsound"))


@pytest.mark.parametrize("model, setting", [("psp", "fully"), ("psp", "weakly"), ("cpsp", "fully")])
def test_train_and_evaluate_on_vggsound_files(stand_in, tmp_path, model, setting):
    files, cache, videos = stand_in
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, [
        "train", str(cache), "--annotations", str(files), "--model", model, "--setting", setting,
        "-o", str(run), "--epochs", "8", "--batch-size", "8", "--seed", "0", "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    assert f"official splits from {files}: 40 train, 10 val videos" in trained.output
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["class_names"] == [*CATEGORIES, "background"]

    evaluated = CliRunner().invoke(main, [
        "evaluate", str(run / "best"), str(cache), "--annotations", str(files), "--json", "-o", str(tmp_path / "ev"),
        "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    test_ids = [v for v, _, split, _ in videos if split == "test"]
    assert report["videos"] == len(test_ids) and report["segments"] == len(test_ids) * T
    truth = np.asarray(report["confusion_matrix"]["counts"]).sum(axis=1)
    annotations = load_vggsound(files)
    expected = np.bincount(annotations.segment_label_matrix(test_ids, T).ravel(), minlength=len(CATEGORIES) + 1)
    np.testing.assert_array_equal(truth, expected)          # the flags, read back, are what is scored
    assert report["segment_accuracy"] > 0.8, report["segment_accuracy"]
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 10_000
