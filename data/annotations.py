"""Event annotations: which seconds of which video hold which audio-visual event.

Two file formats are read into one :class:`Annotations` object:

* AVE ``Annotations.txt``: ``Category&VideoID&Quality&StartTime&EndTime``, one
  video per line, no header (a header line is tolerated). Row i is video index i
  of every official ``avadataset`` HDF5 file, so rows are kept in file order.
  A few YouTube ids appear on two or three rows with different categories; the
  k-th repeat (k >= 2) of an id gets the key ``"<id>#<k>"`` so every row stays
  addressable, and :meth:`Annotations.source_id` gives back the file's id.
  A row whose category is ``background`` is a video without any event (like
  AVE's extra background videos; written so by the synthetic generator).
* CSV for users' own data: header ``video_id,start,end,label`` (extra columns are
  ignored), any number of rows per video, an empty ``label`` (or ``background``)
  with empty times declares a video without events.

Classes are ordered by first appearance in the file (the AVE convention: it is
what reproduces ``mil_labels.h5``) unless a class list is given, e.g. the one
stored in a checkpoint. ``background`` is always the last class.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from avepipe.data import vggsound
from avepipe.data.events import BACKGROUND, Annotations, Event, VideoRecord, read_lines
from avepipe.errors import UserError

AVE_HEADER = ("category", "videoid", "quality", "starttime", "endtime")
CSV_COLUMNS = ("video_id", "start", "end", "label")


# -- loading ---------------------------------------------------------------------------------

def load_annotations(path: str | Path, classes: Sequence[str] | None = None) -> Annotations:
    """Read an AVE ``Annotations.txt`` or a CSV file, recognised by extension or first line, or
    VGGSound-AVEL files given as ``vggsound:META.csv,CATEGORIES.txt,LABELS_DIR`` (data/vggsound.py)."""
    if isinstance(path, vggsound.VGGSoundFiles) or str(path).startswith(vggsound.PREFIX):
        return vggsound.load_vggsound(path, classes)
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return load_csv_annotations(path, classes)
    first = next((line for line in read_lines(path) if line.strip()), "")
    if "&" in first:
        return load_ave_annotations(path, classes)
    if first.split(",")[0].strip().lower() == "video_id":
        return load_csv_annotations(path, classes)
    raise UserError(f"{path}: not an annotation file (expected AVE 'Category&VideoID&Quality&Start&End' lines "
                    f"or a CSV with header {','.join(CSV_COLUMNS)})")


def load_ave_annotations(path: str | Path, classes: Sequence[str] | None = None) -> Annotations:
    """AVE ``Annotations.txt``; one row per video, rows kept in order."""
    path = Path(path)
    records: list[VideoRecord] = []
    seen: dict[str, int] = {}
    labels: list[str] = []
    label_lines: list[int] = []
    for line_no, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.rsplit("&", 4)  # category is the only field that could hold odd characters
        if len(fields) != 5:
            raise UserError(f"{path}:{line_no}: expected 5 '&'-separated fields "
                            f"Category&VideoID&Quality&StartTime&EndTime, got {line!r}")
        category, video_id, _quality, start_text, end_text = (f.strip() for f in fields)
        if not records and tuple(f.lower().replace(" ", "") for f in (category, video_id, _quality,
                                                                       start_text, end_text)) == AVE_HEADER:
            continue
        if not category or not video_id:
            raise UserError(f"{path}:{line_no}: empty category or video id")
        start = _number(start_text, path, line_no, "StartTime")
        end = _number(end_text, path, line_no, "EndTime")
        if start < 0 or end < start:
            # start == end occurs in the real AVE file (an empty event); the category still labels the video
            raise UserError(f"{path}:{line_no}: need 0 <= StartTime <= EndTime, got {start_text}..{end_text}")
        count = seen.get(video_id, 0) + 1
        seen[video_id] = count
        key = video_id if count == 1 else f"{video_id}#{count}"
        if category.lower() == BACKGROUND:
            records.append(VideoRecord(key, video_id, ()))
            continue
        records.append(VideoRecord(key, video_id, (Event(start, end, category),)))
        labels.append(category)
        label_lines.append(line_no)
    return Annotations(records, _class_list(labels, classes, path, label_lines), str(path))


def load_csv_annotations(path: str | Path, classes: Sequence[str] | None = None) -> Annotations:
    """CSV ``video_id,start,end,label``; several rows per video; empty/``background`` label = no event."""
    path = Path(path)
    rows = csv.reader(read_lines(path))
    header = next(rows, None)
    if header is None:
        raise UserError(f"{path}: empty file, expected header {','.join(CSV_COLUMNS)}")
    columns = [c.strip().lower() for c in header]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                        f"(expected {','.join(CSV_COLUMNS)}, got {','.join(header)})")
    where = {c: columns.index(c) for c in CSV_COLUMNS}
    events: dict[str, list[tuple[Event, int]]] = {}
    labels: list[str] = []
    for row in rows:
        line_no = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise UserError(f"{path}:{line_no}: expected {len(columns)} fields, got {len(row)}")
        video_id, start_text, end_text, label = (row[where[c]].strip() for c in CSV_COLUMNS)
        if not video_id:
            raise UserError(f"{path}:{line_no}: empty video_id")
        video_events = events.setdefault(video_id, [])
        if label in ("", BACKGROUND):
            if start_text or end_text:  # a background interval says nothing beyond the default; check it anyway
                _interval(start_text, end_text, path, line_no)
            continue
        start, end = _interval(start_text, end_text, path, line_no)
        event = Event(start, end, label)
        for other, other_line in video_events:
            if other.label != label and other.start < end and start < other.end:
                raise UserError(f"{path}:{line_no}: event {label!r} {start:g}-{end:g} of {video_id} overlaps "
                                f"{other.label!r} {other.start:g}-{other.end:g} from line {other_line}")
        video_events.append((event, line_no))
        labels.append((label, line_no))
    if not events:
        raise UserError(f"{path}: no videos listed")
    class_list = _class_list([label for label, _ in labels], classes, path, [line for _, line in labels])
    records = [VideoRecord(v, v, tuple(sorted((e for e, _ in evs), key=lambda e: e.start)))
               for v, evs in events.items()]
    return Annotations(records, class_list, str(path))


def _number(text: str, path: Path, line_no: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{line_no}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{path}:{line_no}: {what} {text!r} is not a finite number")
    return value


def _interval(start_text: str, end_text: str, path: Path, line_no: int) -> tuple[float, float]:
    start = _number(start_text, path, line_no, "start")
    end = _number(end_text, path, line_no, "end")
    if start < 0:
        raise UserError(f"{path}:{line_no}: start {start_text} is negative")
    if start >= end:
        raise UserError(f"{path}:{line_no}: start {start_text} must be before end {end_text}")
    return start, end


def _class_list(labels: Sequence[str], given: Sequence[str] | None, path: Path,
                line_numbers: Sequence[int]) -> list[str]:
    """Event classes: ``given`` (minus a trailing background) or first appearance in ``labels``."""
    if given is None:
        return list(dict.fromkeys(labels))
    event_classes = [c for c in given if c != BACKGROUND]
    if len(set(event_classes)) != len(event_classes):
        raise UserError(f"{path}: the given class list has duplicates")
    known = set(event_classes)
    for i, label in enumerate(labels):
        if label not in known:
            raise UserError(f"{path}:{line_numbers[i]}: unknown label {label!r} (classes: {', '.join(event_classes)})")
    return event_classes
