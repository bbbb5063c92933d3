"""Typed results of localising one video, and their JSON form.

The JSON form (``to_dict``) is the documented schema in
``avepipe/localize_schema.py``; the CLI writes it and the tests validate it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avepipe.event.metrics import Interval


@dataclass
class SegmentPrediction:
    """The prediction for second ``second`` (segment ``[second, second + 1)``).

    ``source_peak`` is where the sound comes from, ``(x, y)`` in pixels of the original
    frame, for event seconds when a sound-source checkpoint was given.
    """

    second: int
    label: str
    confidence: float
    probabilities: dict[str, float] | None = None
    source_peak: tuple[float, float] | None = None

    def to_dict(self, duration: float) -> dict:
        out = {
            "second": self.second,
            "start": float(self.second),
            # The last second of a video may be partial; seconds past the end (padding) stay whole.
            "end": float(min(self.second + 1, duration)) if duration > self.second else float(self.second + 1),
            "label": self.label,
            "confidence": self.confidence,
        }
        if self.probabilities is not None:
            out["probabilities"] = dict(self.probabilities)
        if self.source_peak is not None:
            out["source_peak"] = [float(v) for v in self.source_peak]
        return out


@dataclass
class LocalizationResult:
    """Everything ``Localizer.localize`` found in one video.

    ``intervals`` are ``Interval(start, end, label, confidence)`` in seconds, labelled by
    class name, ``confidence`` the mean over their seconds. ``explain`` (when asked) holds
    whatever the network's ``explain()`` returns, averaged over the windows: ``[T, T]``
    segment matrices (NaN where two seconds never shared a window), ``[T, h, w]`` maps
    over the frame, or per-second values ``[T]`` / ``[T, K]`` (``explain_kind`` tells
    which). ``thumbnails`` (``[T, h, w, 3]`` uint8, one frame per second) when asked for
    pictures; ``source_maps`` (``[T, 7, 7]``) and ``frame_size`` (``(width, height)`` of
    the original frame) when a sound-source model was given.
    """

    video: str
    duration: float
    has_audio: bool
    segments: list[SegmentPrediction]
    intervals: list[Interval]
    notes: list[str] = field(default_factory=list)
    explain: dict[str, np.ndarray] = field(default_factory=dict)
    thumbnails: np.ndarray | None = None
    source_maps: np.ndarray | None = None
    frame_size: tuple[int, int] | None = None

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.segments]

    def to_dict(self, include_arrays: bool = True) -> dict:
        """JSON-ready dict; explain arrays (``include_arrays``) become nested lists, NaN as null."""
        out = {
            "video": self.video,
            "duration": self.duration,
            "has_audio": self.has_audio,
            "notes": list(self.notes),
            "segments": [s.to_dict(self.duration) for s in self.segments],
            "intervals": [interval_to_dict(i) for i in self.intervals],
        }
        if include_arrays and self.explain:
            out["explain"] = {name: _to_json_array(value) for name, value in self.explain.items()}
        return out


def interval_to_dict(interval: Interval) -> dict:
    """An interval of a localised video in the JSON schema (``mean_confidence``: over its seconds)."""
    return {"start": float(interval.start), "end": float(interval.end), "label": interval.label,
            "mean_confidence": float(interval.confidence)}


def explain_kind(array: np.ndarray) -> str:
    """How to read one video's (or one window's) explain array ``[T, ...]``.

    "matrix": ``[T, T]``, second-to-second; "maps": ``[T, h, w]``, a map over the frame per second;
    "values": ``[T]`` or ``[T, K]``, numbers per second (a ``[T, K]`` with K == T reads as a matrix).
    """
    if array.ndim == 2 and array.shape[0] == array.shape[1]:
        return "matrix"
    return "maps" if array.ndim == 3 else "values"


def _to_json_array(array: np.ndarray) -> list:
    """Nested lists of floats, NaN written as ``None`` (JSON has no NaN)."""
    as_object = np.asarray(array, dtype=np.float64).astype(object)
    as_object[np.isnan(array)] = None
    return as_object.tolist()
