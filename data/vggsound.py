"""VGGSound-AVEL100k / 50k (CPSP, TPAMI 2023) read from the files its authors distribute.

- a metadata CSV, one row per video, with at least the columns ``video_id``,
  ``category`` and ``split`` (``train``/``val``/``test``; other columns are ignored);
- a category list, one category per line: the class index is the line number
  (141 lines for both variants; nothing here assumes that count);
- ``LABELS_DIR/VIDEO_ID.zip``: one ``.pkl`` holding a 0/1 array ``[1, T]``
  (T = 10): 1 where the video's category is audible and visible in that second.

Which variant (100k or 50k) is simply which metadata CSV is passed. The fully
supervised target of second t is the category where the flag is 1, background
elsewhere; the weakly supervised target is the video's category (also for a video
whose flags are all 0). The pickles are untrusted: :func:`read_flags` rebuilds
numpy arrays only and refuses any other object *before* it is constructed. A
missing or malformed label file leaves its video out, is reported and counted,
and does not stop the others.

On the command line the three are one ``--annotations`` value:
``vggsound:META.csv,CATEGORIES.txt,LABELS_DIR``.
"""
from __future__ import annotations

import contextlib
import csv
import gc
import io
import pickle
import sys
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avepipe.errors import UserError
from avepipe.data.events import BACKGROUND, Annotations, Event, VideoRecord, read_lines
from avepipe.data.label_index import indexed_flags

PREFIX = "vggsound:"
META_COLUMNS = ("video_id", "category", "split")
SPLITS = ("train", "val", "test")
MAX_PICKLE_BYTES = 1 << 20      # a [1, 10] array pickles to ~200 bytes; refuse zip bombs outright


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """The only globals a numpy array (or scalar) pickle needs, taken from numpy's own reducers so the
    names match this numpy; pickles from numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) both load."""
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for reducer in (np.zeros(1).__reduce__()[0], np.zeros(1).__reduce_ex__(5)[0], np.float64(0).__reduce__()[0]):
        module = reducer.__module__
        for name in {module, module.replace("numpy._core", "numpy.core"), module.replace("numpy.core", "numpy._core")}:
            allowed[(name, reducer.__name__)] = reducer
    allowed[("_codecs", "encode")] = _latin1_bytes     # how protocols 0 and 1 store an array's bytes
    return allowed


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``codecs.encode`` restricted to what array pickles use it for."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves numpy's array/dtype/scalar rebuilders and nothing else: no other callable can run."""

    allowed = _numpy_rebuilders()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: label pickles may only hold numpy "
                                         f"arrays") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent reference: label pickles may only hold numpy arrays")


def read_flags(path: str | Path) -> np.ndarray:
    """The 0/1 flags ``int64 [T]`` of one ``VIDEO_ID.zip``; a UserError naming the file if it is anything else."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.lower().endswith(".pkl") and not i.is_dir()]
            if len(pickles) != 1:
                raise UserError(f"{path}: expected one .pkl inside, found {len(pickles)}")
            if pickles[0].file_size > MAX_PICKLE_BYTES:
                raise UserError(f"{path}: {pickles[0].filename} is {pickles[0].file_size} bytes, "
                                f"too large for a label array")
            data = archive.read(pickles[0])
    except FileNotFoundError:
        raise UserError(f"{path}: label file not found") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path}: not a readable zip file ({err})") from None
    try:
        value = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()   # latin1: Python 2 pickles
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: {err}") from None
    except Exception as err:   # truncated or corrupt pickles raise almost anything
        raise UserError(f"{path}: not a valid pickle ({type(err).__name__}: {err})") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise UserError(f"{path}: expected a numeric numpy array, found {type(value).__name__}"
                        + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""))
    if value.ndim not in (1, 2) or (value.ndim == 2 and value.shape[0] != 1) or value.size == 0:
        raise UserError(f"{path}: expected a [1, T] array of per-second flags, found shape {list(value.shape)}")
    flags = value.reshape(-1)
    if not np.isin(flags, (0, 1)).all():
        raise UserError(f"{path}: flags must be 0 or 1, found {sorted(set(flags.tolist()) - {0, 1})[:3]}")
    return flags.astype(np.int64)


def flag_events(flags: np.ndarray, category: str) -> tuple[Event, ...]:
    """Runs of consecutive 1-flags as events ``[t0, t1)`` (whole seconds, so segment t is covered iff flag t).

    A plain loop: for 10 flags numpy's per-call overhead cost ~40 us a video, most of a start at 100k videos."""
    events, start = [], None
    for t, flag in enumerate([*np.asarray(flags).tolist(), 0]):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            events.append(Event(float(start), float(t), category))
            start = None
    return tuple(events)


class VGGSoundAnnotations(Annotations):
    """:class:`Annotations` plus what the metadata CSV adds: each video's category and official split."""

    def __init__(self, records: Sequence[VideoRecord], event_classes: Sequence[str], categories: dict[str, str],
                 splits: dict[str, list[str]], problems: Sequence[str] = (), source: str = "<memory>"):
        super().__init__(records, event_classes, source)
        self.categories = categories
        self.splits = splits
        self.problems = list(problems)

    def video_classes(self, video_id: str) -> tuple[int, ...]:
        """Weak target: the video's category, whatever its per-second flags say."""
        return (self.class_index[self.categories[self.record(video_id).key]],)

    def subset(self, video_ids: Iterable[str]) -> VGGSoundAnnotations:
        ids = list(video_ids)
        chosen = set(ids)
        return VGGSoundAnnotations([self.record(v) for v in ids], self.event_classes,
                                   {v: self.categories[v] for v in ids},
                                   {s: [v for v in keys if v in chosen] for s, keys in self.splits.items()},
                                   self.problems, self.source)


@dataclass(frozen=True)
class VGGSoundFiles:
    """The three inputs of a VGGSound-AVEL dataset, as given by ``vggsound:META.csv,CATEGORIES.txt,LABELS_DIR``."""

    metadata: Path
    categories: Path
    labels_dir: Path

    @classmethod
    def parse(cls, text: str) -> VGGSoundFiles:
        parts = [p.strip() for p in text[len(PREFIX):].split(",")] if text.startswith(PREFIX) else []
        if len(parts) != 3 or not all(parts):
            raise UserError(f"{text!r}: expected {PREFIX}META.csv,CATEGORIES.txt,LABELS_DIR")
        return cls(*(Path(p) for p in parts))

    def __str__(self) -> str:
        return f"{PREFIX}{self.metadata},{self.categories},{self.labels_dir}"


def read_categories(path: str | Path) -> list[str]:
    """The category list: line n (from 0) is class n; blank lines only at the end."""
    path = Path(path)
    lines = read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    for line_no, name in enumerate(names, start=1):
        if not name:
            raise UserError(f"{path}:{line_no}: empty line inside the category list (the line number is the class)")
        if name == BACKGROUND:
            raise UserError(f"{path}:{line_no}: '{BACKGROUND}' is implicit and must not be listed")
    seen: dict[str, int] = {}
    for line_no, name in enumerate(names, start=1):
        if name in seen:
            raise UserError(f"{path}:{line_no}: category {name!r} already on line {seen[name]}")
        seen[name] = line_no
    if not names:
        raise UserError(f"{path}: no categories")
    return names


def read_metadata(path: str | Path, categories: Sequence[str]) -> list[tuple[str, str, str]]:
    """(video_id, category, split) per row of the metadata CSV, checked against the category list."""
    path = Path(path)
    rows = csv.reader(read_lines(path))
    header = next(rows, None)
    columns = [c.strip().lower() for c in header or []]
    missing = [c for c in META_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                        f"(needs {','.join(META_COLUMNS)}, got {','.join(header or [])})")
    where = [columns.index(c) for c in META_COLUMNS]
    known = set(categories)
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        line_no = rows.line_num
        if len(row) != len(columns):
            raise UserError(f"{path}:{line_no}: expected {len(columns)} fields, got {len(row)}")
        video_id, category, split = (row[i].strip() for i in where)
        if not video_id:
            raise UserError(f"{path}:{line_no}: empty video_id")
        if category not in known:
            raise UserError(f"{path}:{line_no}: category {category!r} is not in the category list")
        if split not in SPLITS:
            raise UserError(f"{path}:{line_no}: split {split!r} is not one of {', '.join(SPLITS)}")
        if video_id in seen:
            raise UserError(f"{path}:{line_no}: video {video_id!r} already listed on line {seen[video_id]}")
        seen[video_id] = line_no
        out.append((video_id, category, split))
    if not out:
        raise UserError(f"{path}: no videos listed")
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Build many small acyclic objects without Python's cyclic GC: at 100k videos its repeated scans of
    every live object were half the time of a start."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_vggsound(files: VGGSoundFiles | str, classes: Sequence[str] | None = None,
                  progress: bool = True) -> VGGSoundAnnotations:
    """Annotations, categories and official splits of a VGGSound-AVEL dataset.

    ``classes`` (a checkpoint's class list) must equal the category list. Videos
    whose label file is missing or malformed are left out and listed in
    ``.problems`` (a one-line summary goes to stderr).
    """
    files = files if isinstance(files, VGGSoundFiles) else VGGSoundFiles.parse(str(files))
    if not files.labels_dir.is_dir():
        raise UserError(f"{files.labels_dir}: label directory not found")
    categories = read_categories(files.categories)
    if classes is not None and [c for c in classes if c != BACKGROUND] != categories:
        raise UserError(f"{files.categories}: category list differs from the checkpoint's classes")
    with _gc_paused():
        rows = read_metadata(files.metadata, categories)
        records, category_of, problems = [], {}, []
        splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        flags_of = indexed_flags(files.labels_dir, [video_id for video_id, _, _ in rows], read_flags, progress)
        for (video_id, category, split), flags in zip(rows, flags_of):
            if isinstance(flags, UserError):
                problems.append(str(flags))
                continue
            records.append(VideoRecord(video_id, video_id, flag_events(flags, category)))
            category_of[video_id] = category
            splits[split].append(video_id)
        if problems:
            print(f"warning: {len(problems)} of {len(rows)} label files missing or malformed, those videos are "
                  f"left out (first: {problems[0]})", file=sys.stderr)
        if not records:
            raise UserError(f"{files.labels_dir}: no readable label file for the {len(rows)} videos of "
                            f"{files.metadata}")
        return VGGSoundAnnotations(records, categories, category_of, splits, problems, str(files))


def write_vggsound_files(root: str | Path, videos: Iterable[tuple[str, str, str, np.ndarray]],
                         categories: Sequence[str]) -> VGGSoundFiles:
    """Write ``metadata.csv``, ``categories.txt`` and ``labels/VIDEO_ID.zip`` under ``root`` in the authors' formats.

    ``videos``: (video_id, category, split, flags [T]) - for synthetic stand-ins and tests.
    """
    root = Path(root)
    files = VGGSoundFiles(root / "metadata.csv", root / "categories.txt", root / "labels")
    files.labels_dir.mkdir(parents=True, exist_ok=True)
    files.categories.write_text("".join(f"{name}\n" for name in categories), encoding="utf-8")
    with open(files.metadata, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(META_COLUMNS)
        for video_id, category, split, flags in videos:
            writer.writerow((video_id, category, split))
            array = np.asarray(flags, dtype=np.int64).reshape(1, -1)
            with zipfile.ZipFile(files.labels_dir / f"{video_id}.zip", "w") as archive:
                archive.writestr(f"{video_id}.pkl", pickle.dumps(array, protocol=2))
    return files


def write_synth_as_vggsound(dataset, seconds: int) -> VGGSoundFiles:
    """The labels of an ``avepipe synth`` dataset (data/synth.py) as VGGSound-AVEL files in its folder."""
    annotations = dataset.annotations()
    split_of = {video_id: split for split, keys in dataset.splits.items() for video_id in keys}
    videos = []
    for key in annotations.video_ids:
        events = annotations.events(key)
        flags = (annotations.segment_labels(key, seconds) != annotations.background_index).astype(np.int64)
        videos.append((annotations.source_id(key), events[0].label, split_of[key], flags))
    return write_vggsound_files(dataset.root, videos, annotations.event_classes)
