"""Acceptance: FNAC finds the moving sounding object among silent distractors; entry points on a real cache."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from avepipe.errors import UserError
from avepipe.source.api import SourceEvaluateOptions, SourceTrainOptions, evaluate_source, run_source_training
from benchmarks.generators.source_experiment import compare_fnac_baseline
from benchmarks.generators.moving_sources import MovingSourceSpec, make_moving_sources
from avepipe.data.cache import CacheWriter
from avepipe.extract.provenance import ExtractorConfig


def test_fnac_peak_inside_the_box_and_side_by_side_figures(tmp_path):
    result = compare_fnac_baseline(tmp_path, MovingSourceSpec(videos=160, seed=3), test_videos=24, epochs=3)
    print("\n            cIoU    AUC   peak-in-box")
    for name in ("fnac", "baseline"):
        r = result[name]
        print(f"{name:10s} {r['ciou']:6.3f} {r['auc']:6.3f} {r['peak_in_box']:8.3f}")
    assert result["fnac"]["samples"] == 240
    assert result["fnac"]["peak_in_box"] >= 0.8
    assert result["fnac"]["ciou"] > 9 / 49          # chance: a 3x3 box covers 9 of the 49 cells


def test_entry_points_on_a_real_cache(tmp_path):
    features, boxes = make_moving_sources(MovingSourceSpec(videos=8, seconds=4, seed=5))
    features[0].has_audio = False
    config = ExtractorConfig()
    with CacheWriter(tmp_path / "cache.h5", config) as writer:
        for f in features:
            writer.write(f)
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    options = SourceTrainOptions((tmp_path / "cache.h5",), tmp_path / "run", epochs=2, batch_size=8,
                                 device="cpu", progress=False)
    checkpoint = run_source_training(options).best_dir
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[0]["train_tne"]) > 0 and np.isfinite(float(rows[1]["train_loss"]))
    assert (tmp_path / "run" / "curves.png").stat().st_size > 5000
    splits = json.loads((checkpoint / "config.json").read_text())["extra"]["splits"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 1, 1]
    assert json.loads((checkpoint / "config.json").read_text())["extra"]["train_videos"] == 6
    given = SourceEvaluateOptions(checkpoint, (tmp_path / "cache.h5",), tmp_path / "boxes.json", device="cpu",
                                  ids=tuple(f.video_id for f in features))
    metrics = evaluate_source(given)
    assert metrics.samples == 7 * 4            # the video without audio is skipped
    assert 0.0 <= metrics.ciou <= 1.0 and 0.0 <= metrics.auc <= 1.0
    with pytest.raises(UserError, match="cache has no video 'nope'"):
        evaluate_source(replace(given, ids=("nope",)))
