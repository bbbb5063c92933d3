"""Typed results of localising one video, and their JSON form.

The JSON form (``to_dict``) is the documented schema in
``avepipe/localize_schema.py``; the CLI writes it and the tests validate it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
class Interval:
    """A run of consecutive seconds with the same event label: ``[start, end)`` in seconds."""

    start: float
    end: float
    label: str
    mean_confidence: float

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.label,
                "mean_confidence": self.mean_confidence}


@dataclass
class LocalizationResult:
    """Everything ``Localizer.localize`` found in one video.

    ``gamma_va`` / ``gamma_av`` (``[T, T]``, NaN where two seconds never shared a
    window) and ``attention`` (``[T, 7, 7]``) are filled when asked to explain;
    ``thumbnails`` (``[T, h, w, 3]`` uint8, one frame per second) when asked for
    pictures; ``source_maps`` (``[T, 7, 7]``) and ``frame_size`` (``(width, height)``
    of the original frame) when a sound-source model was given.
    """

    video: str
    duration: float
    has_audio: bool
    segments: list[SegmentPrediction]
    intervals: list[Interval]
    notes: list[str] = field(default_factory=list)
    gamma_va: np.ndarray | None = None
    gamma_av: np.ndarray | None = None
    attention: np.ndarray | None = None
    thumbnails: np.ndarray | None = None
    source_maps: np.ndarray | None = None
    frame_size: tuple[int, int] | None = None

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.segments]

    def to_dict(self, include_arrays: bool = True) -> dict:
        """JSON-ready dict; matrices become nested lists (NaN as null) when present."""
        out = {
            "video": self.video,
            "duration": self.duration,
            "has_audio": self.has_audio,
            "notes": list(self.notes),
            "segments": [s.to_dict(self.duration) for s in self.segments],
            "intervals": [i.to_dict() for i in self.intervals],
        }
        if include_arrays:
            for name in ("gamma_va", "gamma_av", "attention"):
                value = getattr(self, name)
                if value is not None:
                    out[name] = _to_json_array(value)
        return out


def _to_json_array(array: np.ndarray) -> list:
    """Nested lists of floats, NaN written as ``None`` (JSON has no NaN)."""
    as_object = np.asarray(array, dtype=np.float64).astype(object)
    as_object[np.isnan(array)] = None
    return as_object.tolist()
