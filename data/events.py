"""The labels of videos, whatever file they were read from: events, one record per video, ``Annotations``.

avepipe/data/annotations.py reads AVE and CSV files into these, avepipe/data/vggsound.py the
VGGSound-AVEL files; the rest of avepipe only sees ``Annotations``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avepipe.errors import UserError

BACKGROUND = "background"


@dataclass(frozen=True)
class Event:
    """One event ``label`` during ``[start, end)`` seconds."""

    start: float
    end: float
    label: str

    def covers_segment(self, t: int) -> bool:
        """Segment t spans [t, t+1) s; it belongs to the event when its centre does.

        For whole-second AVE times this is exactly AVE's ``start <= t < end``.
        """
        return self.start <= t + 0.5 < self.end

    def segment_range(self) -> tuple[int, int]:
        """``[first, stop)``: the segments t that ``covers_segment`` (t + 0.5 in [start, end)), without a loop."""
        return math.ceil(self.start - 0.5), math.ceil(self.end - 0.5)


@dataclass(frozen=True)
class VideoRecord:
    """The events of one video; ``key`` is unique in the file, ``video_id`` names the video file."""

    key: str
    video_id: str
    events: tuple[Event, ...]


class Annotations:
    """Labels of a set of videos, with the class list they are indexed by."""

    def __init__(self, records: Sequence[VideoRecord], event_classes: Sequence[str], source: str = "<memory>"):
        self.source = source
        self._records = {r.key: r for r in records}
        if len(self._records) != len(records):
            raise ValueError("video keys must be unique")
        if BACKGROUND in event_classes:
            raise ValueError(f"'{BACKGROUND}' is implicit and must not be an event class")
        self.classes: list[str] = [*event_classes, BACKGROUND]
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        for record in records:
            for event in record.events:
                if event.label not in self.class_index:
                    raise ValueError(f"{record.key}: label {event.label!r} not in the class list")

    # -- what is annotated -------------------------------------------------
    @property
    def video_ids(self) -> list[str]:
        """Unique keys in file order (row i of an AVE file is ``video_ids[i]``)."""
        return list(self._records)

    @property
    def event_classes(self) -> list[str]:
        return self.classes[:-1]

    @property
    def background_index(self) -> int:
        return len(self.classes) - 1

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._records

    def record(self, video_id: str) -> VideoRecord:
        try:
            return self._records[video_id]
        except KeyError:
            raise UserError(f"{self.source}: no annotation for video {video_id!r}") from None

    def events(self, video_id: str) -> tuple[Event, ...]:
        return self.record(video_id).events

    def source_id(self, video_id: str) -> str:
        """The video file's id behind a key (differs only for repeated AVE ids)."""
        return self.record(video_id).video_id

    # -- labels --------------------------------------------------------------
    def segment_labels(self, video_id: str, segments: int = 10) -> np.ndarray:
        """int64 ``[segments]``: class index per one-second segment, background where no event."""
        labels = np.full(segments, self.background_index, dtype=np.int64)
        for event in self.events(video_id):
            first, stop = event.segment_range()
            labels[max(first, 0):max(stop, 0)] = self.class_index[event.label]
        return labels

    def video_classes(self, video_id: str) -> tuple[int, ...]:
        """Class indices of the weak label: every event class of the video; background only when it has none."""
        events = self.events(video_id)
        return tuple(self.class_index[e.label] for e in events) if events else (self.background_index,)

    def video_label(self, video_id: str) -> np.ndarray:
        """float32 ``[C+1]``: 1 at each of ``video_classes`` (the AVE ``mil_labels.h5`` / ``labels_noisy.h5``
        convention, weak supervision)."""
        label = np.zeros(len(self.classes), dtype=np.float32)
        label[list(self.video_classes(video_id))] = 1.0
        return label

    def segment_label_matrix(self, video_ids: Iterable[str] | None = None, segments: int = 10) -> np.ndarray:
        ids = self.video_ids if video_ids is None else list(video_ids)
        out = np.empty((len(ids), segments), np.int64)
        for row, video_id in enumerate(ids):
            out[row] = self.segment_labels(video_id, segments)
        return out

    def video_label_matrix(self, video_ids: Iterable[str] | None = None) -> np.ndarray:
        ids = self.video_ids if video_ids is None else list(video_ids)
        out = np.empty((len(ids), len(self.classes)), np.float32)
        for row, video_id in enumerate(ids):
            out[row] = self.video_label(video_id)
        return out

    def subset(self, video_ids: Iterable[str]) -> Annotations:
        """The same classes, only these videos (in the given order)."""
        return Annotations([self.record(v) for v in video_ids], self.event_classes, self.source)


def read_lines(path: Path) -> list[str]:
    """Lines without BOM or line endings (CRLF files from Windows are common)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise UserError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None
    return text.splitlines()
