"""A torch Dataset of cached features and their labels, streamed from disk or held in memory.

Streaming is the default so that a cache larger than RAM trains: each worker
process opens its own read-only handle on first use (HDF5 handles must not cross
a fork). Small caches are loaded once (``in_memory="auto"`` decides from the
estimated size and the available RAM) because per-item HDF5 reads then dominate.

Batches are fetched whole through ``__getitems__`` (a DataLoader with
``collate_fn=already_batched``), so an in-memory batch is one fancy-index copy.

Weakly supervised training on AVE also uses the 178 background-only ("noisy")
videos: pass their cache as ``background_caches``; every video in such a cache is
labelled background in all segments and ``[0, ..., 0, 1]`` at video level, which is
exactly ``labels_noisy.h5``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from avepipe.errors import UserError
from avepipe.data.annotations import Annotations
from avepipe.data.cache import FeatureCache
from avepipe.data.packed_cache import open_packed

VISUAL_SHAPE = (7, 7, 512)
AUDIO_DIM = 128
# Held in memory only when the estimated float32 size is below this share of the available RAM.
MEMORY_SHARE = 0.4


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); elsewhere a conservative 4 GiB."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def estimated_bytes(videos: int, segments: int) -> int:
    """float32 bytes of the visual and audio features of ``videos`` x ``segments``."""
    return videos * segments * (int(np.prod(VISUAL_SHAPE)) + AUDIO_DIM) * 4


@dataclass(frozen=True)
class _Item:
    cache_index: int
    video_id: str          # id inside the cache (the file id, not the annotation key)


class FeatureDataset(Dataset):
    """Videos ``ids`` (annotation keys) found in ``caches``, with segment and video labels.

    Items (and batches) are dicts: ``audio`` ``[T,128]``, ``visual`` ``[T,7,7,512]``
    float32, ``segment_labels`` ``[T]`` int64, ``video_label`` ``[C+1]`` float32,
    ``index`` (position in this dataset).
    """

    def __init__(self, caches: Sequence[str | Path], annotations: Annotations, ids: Sequence[str],
                 segments: int | None = None, in_memory: bool | str = "auto",
                 background_caches: Sequence[str | Path] = ()):
        self.cache_paths = [str(p) for p in [*caches, *background_caches]]
        self.keys: list[str] = []
        self._items: list[_Item] = []
        opened = [FeatureCache(p) for p in self.cache_paths]
        where = {}
        for index in range(len(caches)):
            for vid in opened[index].ids:
                where.setdefault(vid, index)
        sources = [annotations.source_id(k) for k in ids]
        missing = [k for k, source in zip(ids, sources) if source not in where]
        if missing:
            raise UserError(f"{self.cache_paths[0]}: {len(missing)} annotated videos are not in the cache "
                            f"(first: {missing[0]!r})")
        self.keys.extend(ids)
        self._items.extend(_Item(where[source], source) for source in sources)
        self.num_labelled = len(self.keys)
        for index in range(len(caches), len(opened)):
            for vid in opened[index].ids:
                self.keys.append(f"background:{vid}")
                self._items.append(_Item(index, vid))
        if not self._items:
            raise UserError(f"{self.cache_paths[0]}: no videos to load")

        first = self._items[0]
        self.segments = segments or opened[first.cache_index].summary(first.video_id).segments
        self.extractors = [c.config for c in opened]
        # A current packed copy (data/packed_cache.py) is read instead of the per-video parts.
        self._packed = [open_packed(c.path, c.config.to_json()) for c in opened]
        self.packed = all(p is not None and p.segments == self.segments for p in self._packed)
        self._packed_rows = (np.array([[it.cache_index, self._packed[it.cache_index].row[it.video_id]]
                                       for it in self._items], dtype=np.int64) if self.packed else None)
        del opened    # workers reopen lazily; no HDF5 handle may cross a fork

        labelled = self.keys[:self.num_labelled]
        background = len(annotations.classes) - 1
        extra = len(self.keys) - self.num_labelled
        self.segment_labels = np.concatenate([
            annotations.segment_label_matrix(labelled, self.segments),
            np.full((extra, self.segments), background, np.int64)])
        bg_label = np.zeros((extra, len(annotations.classes)), np.float32)
        bg_label[:, background] = 1.0
        self.video_labels = np.concatenate([annotations.video_label_matrix(labelled), bg_label])

        self._handles: list[FeatureCache] | None = None
        self._pid: int | None = None
        self._audio = self._visual = None
        if in_memory == "auto":
            in_memory = estimated_bytes(len(self), self.segments) < MEMORY_SHARE * available_memory_bytes()
        self.in_memory = bool(in_memory)
        if self.in_memory:
            self._load_all()

    def __len__(self) -> int:
        return len(self._items)

    def _cache(self, index: int) -> FeatureCache:
        if self._handles is None or self._pid != os.getpid():
            self._handles = [FeatureCache(p) for p in self.cache_paths]
            self._pid = os.getpid()
        return self._handles[index]

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        item = self._items[i]
        audio, visual = self._cache(item.cache_index).read_arrays(item.video_id, ("audio", "visual"), dtype=None)
        if visual.shape != (self.segments, *VISUAL_SHAPE) or audio.shape != (self.segments, AUDIO_DIM):
            raise UserError(f"{self.cache_paths[item.cache_index]}: video {item.video_id!r} has features "
                            f"{visual.shape}/{audio.shape}, expected {self.segments} segments "
                            f"of {VISUAL_SHAPE}/{AUDIO_DIM}")
        return audio, visual

    def _read_packed(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch from the packed copies: one pread per video and modality, no file opened."""
        cache_of, rows = self._packed_rows[idx].T
        out: dict[str, np.ndarray] = {}
        for c in np.unique(cache_of):
            chosen = np.flatnonzero(cache_of == c)
            for key in ("audio", "visual"):
                part = self._packed[c].read_rows(key, rows[chosen])
                if key not in out:
                    out[key] = np.empty((len(idx), *part.shape[1:]), part.dtype)
                out[key][chosen] = part
        return out["audio"], out["visual"]

    def _load_all(self) -> None:
        """Read every video once, keeping the storage dtype (float16 caches stay half the size)."""
        from tqdm import tqdm

        audio, visual = None, None
        for i in tqdm(range(len(self)), desc="loading features", unit="video", leave=False):
            if self.packed:
                a, v = (x[0] for x in self._read_packed(np.array([i])))
            else:
                a, v = self._read(i)
            if audio is None:
                audio = np.empty((len(self), *a.shape), a.dtype)
                visual = np.empty((len(self), *v.shape), v.dtype)
            audio[i], visual[i] = a, v
        self._audio, self._visual = audio, visual
        self._handles = None

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.in_memory:
            audio, visual = self._audio[idx], self._visual[idx]
        elif self.packed:
            audio, visual = self._read_packed(idx)
        else:
            pairs = [self._read(int(i)) for i in idx]
            audio = np.stack([a for a, _ in pairs])
            visual = np.stack([v for _, v in pairs])
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            "visual": torch.from_numpy(np.ascontiguousarray(visual, dtype=np.float32)),
            "segment_labels": torch.from_numpy(self.segment_labels[idx]),
            "video_label": torch.from_numpy(self.video_labels[idx]),
            "index": torch.from_numpy(idx),
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = None    # each worker opens its own
        return state


def already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataLoader ``collate_fn`` for datasets whose ``__getitems__`` returns a whole batch."""
    return batch
