"""Held-out evaluation of the sound-source task: video splits, scored seconds, baselines beside the model.

A sound-source run splits the cache's videos into train/validation/test (seeded by
``avepipe.data.splits.seeded_split``, stored in the checkpoint's ``extra["splits"]``): the localiser trains on ``train``, the epoch kept is
the best on ``val`` (when boxes are given), and ``evaluate`` scores ``test`` by default,
with the baselines of avepipe/source/baselines.py fitted on ``train`` beside it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from avepipe.errors import UserError
from avepipe.source.baselines import Samples, baseline_metrics
from avepipe.source.maps import source_maps
from avepipe.source.metrics import evaluate_maps
from avepipe.source.training import checked_ids

BASELINE_NAMES = {"random_cell": "random cell", "fixed_cell": "best fixed cell (training videos)",
                  "linear_probe": "linear probe on pool5 (supervised)"}


@dataclass
class SourceReport:
    """All figures of one sound-source evaluation (the model's, and baselines' beside it); ``to_json`` is the
    ``--json`` output."""

    ciou: float
    auc: float
    mean_iou: float
    peak_in_box: float
    samples: int
    threshold: float | str
    videos: int
    split: str | None = None                                   # None: the given videos, not a split
    baselines: dict[str, dict] = field(default_factory=dict)   # name -> the same figures

    def to_json(self) -> dict:
        found = {k: getattr(self, k) for k in ("ciou", "auc", "mean_iou", "peak_in_box", "samples", "threshold",
                                               "videos")}
        if self.split is not None:
            found["split"] = self.split
        if self.baselines:
            found["baselines"] = self.baselines
        return found

    def table(self) -> str:
        """The figures of the model and its baselines as aligned text (``avepipe source evaluate``)."""
        rows = [("model", self.to_json()), *((BASELINE_NAMES[k], v) for k, v in self.baselines.items())]
        lines = [f"{'':<34}{'cIoU':>7}{'AUC':>7}{'mIoU':>7}{'peak-in-box':>13}"]
        lines += [f"{name:<34}{r['ciou']:>7.3f}{r['auc']:>7.3f}{r['mean_iou']:>7.3f}{r['peak_in_box']:>13.3f}"
                  for name, r in rows]
        lines += ["cIoU: fraction of seconds with IoU >= 0.5; AUC: success rate over IoU 0..1; "
                  "peak-in-box: the map's strongest cell lies in the box",
                  f"{self.samples} seconds of {self.videos} videos ({self.split or 'given videos'}), "
                  f"map binarised at {self.threshold}; baselines fitted on the training videos"]
        return "\n".join(lines)


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
    return np.concatenate([source_maps(model, features, device)[seconds] for features, seconds in videos])


def score_with_baselines(model, cache, boxes: dict, splits: dict[str, list[str]] | None, split: str,
                         threshold: float | str = 0.5, device: str = "cpu", linear_probe: bool = False) -> SourceReport:
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
    return SourceReport(**evaluate_maps(model_maps(model, videos, device), scored.boxes, scored.frame_sizes,
                                        threshold), videos=len(videos), split=split,
                        baselines=baseline_metrics(train, scored, threshold, linear_probe=linear_probe))


def evaluate_localizer(model, cache, boxes: dict, ids: Sequence[str] | None = None, threshold: float | str = 0.5,
                       device: str = "cpu") -> SourceReport:
    """cIoU, AUC, mean IoU and peak-in-box over every (video, second) of ``ids`` (all: None) with a box and audio."""
    videos, samples = box_samples(cache, boxes, checked_ids(cache, ids))
    if not len(samples):
        raise UserError("no (video, second) of the cache has a box and audio to evaluate")
    return SourceReport(**evaluate_maps(model_maps(model, videos, device), samples.boxes, samples.frame_sizes,
                                        threshold), videos=len(videos))
