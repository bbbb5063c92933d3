"""Held-out evaluation of the sound-source task: video splits, scored seconds, baselines beside the model.

A sound-source run splits the cache's videos into train/validation/test (seeded, stored in
the checkpoint's ``extra["splits"]``): the localiser trains on ``train``, the epoch kept is
the best on ``val`` (when boxes are given), and ``evaluate`` scores ``test`` by default,
with the baselines of avepipe/source/baselines.py fitted on ``train`` beside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avepipe.errors import UserError
from avepipe.source.baselines import Samples, baseline_metrics
from avepipe.source.metrics import evaluate_maps

SPLITS = ("train", "val", "test")


def split_videos(ids: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded random split of video ids; each split keeps the ids' order. Val and test get at least one
    video each when their fraction is positive and there are three videos or more."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise UserError(f"--val-fraction and --test-fraction must be >= 0 and sum below 1, "
                        f"got {val_fraction} and {test_fraction}")
    ids = list(ids)
    sizes = [int(round(f * len(ids))) for f in (val_fraction, test_fraction)]
    if len(ids) >= 3:
        sizes = [max(1, n) if f > 0 else 0 for n, f in zip(sizes, (val_fraction, test_fraction))]
    order = np.random.default_rng(seed).permutation(len(ids))
    val, test = set(order[:sizes[0]].tolist()), set(order[sizes[0]:sum(sizes)].tolist())
    return {"train": [v for i, v in enumerate(ids) if i not in val | test],
            "val": [v for i, v in enumerate(ids) if i in val],
            "test": [v for i, v in enumerate(ids) if i in test]}


def box_samples(cache, boxes: dict, ids: Sequence[str], keep_visual: bool = False):
    """``(videos, samples)``: the (features, seconds) of every video with audio and boxes among ``ids``,
    and the boxed seconds as ``Samples`` in the same order."""
    videos, sample_boxes, sizes, visual = [], [], [], []
    for video_id in ids:
        if video_id not in boxes:
            continue
        features = cache.read(video_id)
        if not features.has_audio:
            continue
        segments = min(len(features.audio), len(features.visual))
        seconds = [t for t in sorted(boxes[video_id].boxes) if t < segments]
        videos.append((features, seconds))
        sample_boxes += [boxes[video_id].boxes[t] for t in seconds]
        sizes += [boxes[video_id].frame_size] * len(seconds)
        if keep_visual:
            visual.append(np.asarray(features.visual[seconds], dtype=np.float32))
    return videos, Samples(sample_boxes, sizes, np.concatenate(visual) if visual else None)


def model_maps(model, videos, device: str = "cpu") -> np.ndarray:
    """The model's maps ``[N, 7, 7]`` of the boxed seconds of ``videos`` (``box_samples`` order)."""
    from avepipe.source.maps import source_maps

    return np.concatenate([source_maps(model, features, device)[seconds] for features, seconds in videos])


def score_with_baselines(model, cache, boxes: dict, splits: dict[str, list[str]] | None, split: str,
                         threshold: float | str = 0.5, device: str = "cpu", linear_probe: bool = False) -> dict:
    """The model's metrics on ``split`` and, under ``"baselines"``, those of the random cell, the best fixed
    cell and (``linear_probe``) the supervised probe, fitted on the training videos.

    Without ``splits`` (a checkpoint from before runs were split) every video is scored and the
    baselines are fitted on the scored videos themselves, which flatters them.
    """
    if splits is None:
        scored_ids = train_ids = list(cache.ids)
        split = "all (the checkpoint has no split)"
    else:
        if split not in splits:
            raise UserError(f"unknown split {split!r} (choose from {', '.join(splits)})")
        scored_ids, train_ids = splits[split], splits["train"]
    videos, scored = box_samples(cache, boxes, scored_ids, keep_visual=linear_probe)
    if not videos or not len(scored):
        raise UserError(f"no (video, second) of the {split} split has a box and audio to evaluate")
    _, train = box_samples(cache, boxes, train_ids, keep_visual=linear_probe)
    if not len(train):
        raise UserError("no training video has boxes: the fixed-cell baseline cannot be fitted")
    report = {**evaluate_maps(model_maps(model, videos, device), scored.boxes, scored.frame_sizes, threshold),
              "videos": len(videos), "split": split}
    report["baselines"] = baseline_metrics(train, scored, threshold, linear_probe=linear_probe)
    return report
