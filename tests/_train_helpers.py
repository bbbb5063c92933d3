"""Helpers for the training tests: the generated features (benchmarks.generators.synthetic_features) and caches of them."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from benchmarks.generators.synthetic_features import T, make_videos, tensor_splits
from avepipe.data.cache import CacheWriter
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig

__all__ = ["T", "make_videos", "tensor_splits", "write_annotations", "write_cache",    # re-exported for the tests
           "write_labels_csv"]


def write_cache(path: Path, ids, audio, visual, config: ExtractorConfig | None = None, dtype: str = "float32"):
    config = config or ExtractorConfig(segments=T)
    with CacheWriter(path, config, dtype=dtype) as writer:
        for vid, a, v in zip(ids, audio, visual):
            writer.write(VideoFeatures(vid, v, a, duration=float(len(a)), source_fps=16.0, has_audio=True))
    return path


def write_annotations(path: Path, ids, segment_labels, class_names) -> Path:
    """A CSV with one event row per video (its run of event segments) or an empty row (background only)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "start", "end", "label"])
        for vid, labels in zip(ids, segment_labels):
            events = np.flatnonzero(labels != len(class_names))
            writer.writerow([vid, events[0], events[-1] + 1, class_names[labels[events[0]]]] if len(events)
                            else [vid, "", "", ""])
    return path


def write_labels_csv(path: Path, ids, labels, names) -> Path:
    """``video_id,start,end,label`` rows for segment labels ``[N,T]`` (label ``len(names)`` = background)."""
    rows = ["video_id,start,end,label"]
    for vid, video_labels in zip(ids, labels):
        events = [f"{vid},{t},{t + 1},{names[c]}" for t, c in enumerate(video_labels) if c != len(names)]
        rows += events or [f"{vid},0,{T},background"]
    path.write_text("\n".join(rows) + "\n")
    return path
