"""On-disk layout of a feature cache, shared by the writer and the reader.

A cache ``CACHE`` (e.g. ``feats.h5``) is:

- ``CACHE.parts/v-<sha256(id)[:32]>.h5``: one small HDF5 file per finished
  video. Parts are created under a temporary name, fsynced and renamed
  (``os.replace``), so a part exists whole or not at all, and the parts
  directory is the truth about which videos are done. Hashing the id gives a
  safe file name for any id (spaces, non-ASCII, slashes) and lets several
  writers (shards) share the directory without coordination.
- ``CACHE``: a small HDF5 *index* (provenance attributes, a per-video summary
  and ``/videos/<id>`` external links into the parts) that plain h5py users can
  open. It is rewritten atomically, so it may lag behind the parts but is never
  half-written.
- ``CACHE.errors.json``: the inputs that failed in the last run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
from h5py import h5p, h5t
import numpy as np

from avepipe.errors import UserError

FORMAT = "avepipe-feature-cache"
FORMAT_VERSION = 1
PART_RE = re.compile(r"^v-[0-9a-f]{32}\.h5$")
PART_NAME_DTYPE = "S40"     # part names as fixed-length bytes (they are 37: "v-" + 32 hex digits + ".h5")
TMP_PREFIX = ".tmp-"
DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class PartSummary:
    """What the index keeps per video, so listing a cache needs no part opens."""

    video_id: str
    segments: int
    has_audio: bool
    has_video: bool


def parts_dir(cache: Path) -> Path:
    return cache.with_name(cache.name + ".parts")


def errors_path(cache: Path) -> Path:
    return cache.with_name(cache.name + ".errors.json")


def part_name(video_id: str) -> str:
    return "v-" + hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:32] + ".h5"


def link_name(video_id: str) -> str:
    """HDF5 link name for an id: ``%``, ``/`` and a bare ``.`` are %-escaped (HDF5 reserves them)."""
    name = video_id.replace("%", "%25").replace("/", "%2F")
    return "%2E" if name == "." else name


def temp_name(final_name: str) -> str:
    """A writer-unique temporary name; readers ignore it, later writers clean it up."""
    return f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final_name}"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success fsync it and rename it into place.

    After the block returns, ``final`` is durable (file data and directory entry
    fsynced); if the process dies inside, ``final`` is untouched.
    """
    tmp = final.with_name(temp_name(final.name))
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files left by dead processes of this host (kill -9 mid-write)."""
    if not directory.is_dir():
        return
    host = socket.gethostname()
    for entry in os.scandir(directory):
        if not entry.name.startswith(TMP_PREFIX):
            continue
        rest = entry.name[len(TMP_PREFIX):]
        if not rest.startswith(host + "-"):
            continue
        pid_text = rest[len(host) + 1:].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_part_summary(path: Path) -> PartSummary:
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            return PartSummary(str(a["video_id"]), int(a["segments"]), bool(a["has_audio"]), bool(a["has_video"]))
    except (OSError, KeyError) as exc:
        raise UserError(f"{path}: unreadable cache part ({exc}); delete it and rerun to redo that video") from exc


def list_part_names(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return [e.name for e in os.scandir(directory) if PART_RE.match(e.name)]


@dataclass(frozen=True)
class PartTable:
    """The index's per-video columns as numpy arrays, rows sorted by id.

    One array per field rather than one Python object per video: a 100k-video
    cache opens in well under a second and holds a few MB.
    """

    parts: np.ndarray       # part file names, bytes (all of one length)
    ids: np.ndarray         # video ids, an object array of str
    segments: np.ndarray    # int32
    has_audio: np.ndarray   # bool
    has_video: np.ndarray   # bool

    @classmethod
    def of(cls, summaries: Mapping[str, PartSummary]) -> PartTable:
        """From part name -> summary (any order)."""
        values = list(summaries.values())
        return cls(np.array([p.encode() for p in summaries], dtype=PART_NAME_DTYPE),
                   np.array([s.video_id for s in values], dtype=object),
                   np.array([s.segments for s in values], dtype=np.int32),
                   np.array([s.has_audio for s in values], dtype=bool),
                   np.array([s.has_video for s in values], dtype=bool)).sorted()

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> PartTable:
        return PartTable(*(column[rows] for column in self._columns()))

    def sorted(self) -> PartTable:
        return self.take(np.argsort(self.ids, kind="stable"))

    def updated(self, newer: PartTable) -> PartTable:
        """These rows and ``newer``'s, a part in both taking ``newer``'s summary."""
        kept = self.take(np.flatnonzero(~is_in(self.parts, newer.parts)))
        return PartTable(*(np.concatenate(pair) for pair in zip(kept._columns(), newer._columns()))).sorted()

    def rows(self, video_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row of each id, -1 where it is not in the table."""
        return positions(self.ids, video_ids)

    def summary(self, row: int) -> PartSummary:
        return PartSummary(self.ids[row], int(self.segments[row]), bool(self.has_audio[row]),
                           bool(self.has_video[row]))

    def part(self, row: int) -> str:
        return self.parts[row].decode()

    def _columns(self) -> tuple[np.ndarray, ...]:
        return self.parts, self.ids, self.segments, self.has_audio, self.has_video


def positions(sorted_ids: np.ndarray, video_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Index of each of ``video_ids`` in the sorted array ``sorted_ids`` (binary search), -1 where absent."""
    query = np.asarray(video_ids, dtype=object if sorted_ids.dtype == object else None)
    if not len(sorted_ids) or not len(query):
        return np.full(len(query), -1, np.int64)
    found = np.minimum(np.searchsorted(sorted_ids, query), len(sorted_ids) - 1)
    return np.where(sorted_ids[found] == query, found, -1)


def is_in(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin`` for arrays of strings, by sort and binary search (several times faster on 100k names)."""
    return positions(np.sort(pool), values) >= 0


def scan_parts(directory: Path, known: PartTable) -> PartTable:
    """The table of every finished part in ``directory``: rows of ``known`` whose part is still there, plus
    the parts not in ``known`` (only those are opened)."""
    listed = np.array(list_part_names(directory), dtype=PART_NAME_DTYPE)
    added = PartTable.of({name: read_part_summary(directory / name)
                          for name in (n.decode() for n in listed[~is_in(listed, known.parts)])})
    return known.take(np.flatnonzero(is_in(known.parts, listed))).updated(added)


@dataclass
class IndexContents:
    extractor_json: str
    dtype: dict[str, str]
    table: PartTable


def read_index(cache: Path) -> IndexContents | None:
    """The index file's contents, or None when there is no index yet."""
    if not cache.exists():
        return None
    try:
        with h5py.File(cache, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise UserError(f"{cache}: not an avepipe feature cache (no format attribute {FORMAT!r})")
            empty = not len(f["ids"])
            table = PartTable(np.array([] if empty else f["parts"][()], dtype=PART_NAME_DTYPE),
                              np.array([] if empty else f["ids"].asstr()[()], dtype=object),
                              f["segments"][()].astype(np.int32), f["has_audio"][()].astype(bool),
                              f["has_video"][()].astype(bool)).sorted()
            return IndexContents(str(f.attrs["extractor"]), json.loads(f.attrs["dtype"]), table)
    except OSError as exc:
        raise UserError(f"{cache}: cannot open as HDF5 ({exc})") from exc
    except KeyError as exc:
        raise UserError(f"{cache}: not an avepipe feature cache (missing {exc})") from exc


def write_index(cache: Path, extractor_json: str, dtype: dict[str, str], table: PartTable, version: str) -> None:
    """Atomically replace the index with one listing ``table`` (sorted by id)."""
    rel = parts_dir(cache).name
    text = h5py.string_dtype("utf-8")
    with atomic_file(cache) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["extractor"] = extractor_json
            f.attrs["dtype"] = json.dumps(dtype, sort_keys=True)
            f.attrs["avepipe_version"] = version
            f.create_dataset("ids", data=table.ids, dtype=text)
            f.create_dataset("parts", data=[p.decode() for p in table.parts], dtype=text)
            f.create_dataset("segments", data=table.segments)
            f.create_dataset("has_audio", data=table.has_audio)
            f.create_dataset("has_video", data=table.has_video)
            add_external_links(f.create_group("videos"), [link_name(v) for v in table.ids],
                               [os.fsencode(rel) + b"/" + part for part in table.parts])


def add_external_links(group: h5py.Group, names: Sequence[str], files: Sequence[bytes]) -> None:
    """``group[name] = h5py.ExternalLink(file, "/")`` for each pair, through h5py's low-level call: the same
    links (name charset ASCII, or UTF-8 when the name is not ASCII), without ~50 us of Python per link,
    which is most of rewriting a 100k-video index."""
    lcpl = {}
    for charset in (h5t.CSET_ASCII, h5t.CSET_UTF8):
        lcpl[charset] = h5p.create(h5p.LINK_CREATE)
        lcpl[charset].set_char_encoding(charset)
    links = group.id.links
    for name, file in zip(names, files):
        charset = h5t.CSET_ASCII if name.isascii() else h5t.CSET_UTF8
        links.create_external(name.encode(), file, b"/", lcpl=lcpl[charset])


def stored_provenance(cache: Path) -> tuple[str, dict[str, str]] | None:
    """(extractor JSON, dtype) of an existing cache: from the index, else from any part."""
    index = read_index(cache)
    if index is not None:
        return index.extractor_json, index.dtype
    for name in list_part_names(parts_dir(cache)):
        path = parts_dir(cache) / name
        try:
            with h5py.File(path, "r") as f:
                return str(f.attrs["extractor"]), json.loads(f.attrs["dtype"])
        except (OSError, KeyError) as exc:
            raise UserError(f"{path}: unreadable cache part ({exc})") from exc
    return None
