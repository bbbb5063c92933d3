"""A torch Dataset of cached features and their labels, streamed from disk or held in memory.

Streaming is the default so that a cache larger than RAM trains: each read opens
and closes one part file, so no HDF5 handle crosses a fork into DataLoader
workers. Small caches are loaded once (``in_memory="auto"`` decides from the
estimated size and the available RAM) because per-item HDF5 reads then dominate.

Batches are fetched whole through ``__getitems__`` (a DataLoader with
``collate_fn=already_batched``), so an in-memory batch is one gathering copy.

Weakly supervised training on AVE also uses the 178 background-only ("noisy")
videos: pass their cache as ``background_caches``; every video in such a cache is
labelled background in all segments and ``[0, ..., 0, 1]`` at video level, which is
exactly ``labels_noisy.h5``.
"""
from __future__ import annotations

from array import array
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from avepipe.errors import UserError
from avepipe.data.annotations import Annotations
from avepipe.data.cache import CacheSet, FeatureCache
from avepipe.extract.features import AUDIO_SHAPE, VISUAL_SHAPE

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
    return videos * segments * (int(np.prod(VISUAL_SHAPE)) + AUDIO_SHAPE[0]) * 4


class FeatureDataset(Dataset):
    """Videos ``ids`` (annotation keys) found in ``caches``, with segment and video labels.

    Items (and batches) are dicts: ``audio`` ``[T,128]``, ``visual`` ``[T,7,7,512]``
    float32, ``segment_labels`` ``[T]`` int64, ``video_label`` ``[C+1]`` float32,
    ``index`` (position in this dataset). All caches, background ones included,
    are read as one ``CacheSet``: one extractor, and no video in two caches.
    A cache may be given already open (a ``FeatureCache``): datasets over the same
    caches then share them instead of each opening (indexing) them again.
    """

    def __init__(self, caches: Sequence[str | Path | FeatureCache], annotations: Annotations, ids: Sequence[str],
                 segments: int | None = None, in_memory: bool | str = "auto",
                 background_caches: Sequence[str | Path | FeatureCache] = ()):
        self.caches = CacheSet([*caches, *background_caches])
        self.keys: list[str] = list(ids)
        self._video_ids = [annotations.source_id(k) for k in ids]      # file ids, not annotation keys
        self.num_labelled = len(self.keys)
        for cache in self.caches.caches[len(caches):]:
            self.keys += [f"background:{vid}" for vid in cache.ids]
            self._video_ids += cache.ids
        owners = self.caches.owners(self._video_ids)       # index into self.caches.caches, per item
        missing = np.flatnonzero((owners[:self.num_labelled] < 0) | (owners[:self.num_labelled] >= len(caches)))
        if len(missing):
            raise UserError(f"{self.caches.paths[0]}: {len(missing)} annotated videos are not in the cache "
                            f"(first: {self.keys[missing[0]]!r})")
        if not self._video_ids:
            raise UserError(f"{self.caches.paths[0]}: no videos to load")
        self.segments = segments or self.caches.summary(self._video_ids[0]).segments
        self._use_packed(owners)
        self._set_labels(annotations)
        self._audio = self._visual = None
        if in_memory == "auto":
            in_memory = estimated_bytes(len(self), self.segments) < MEMORY_SHARE * available_memory_bytes()
        self.in_memory = bool(in_memory)
        if self.in_memory:
            self._load_all()

    def _use_packed(self, owners: np.ndarray) -> None:
        """Read a current packed copy of every cache (`avepipe cache pack`) instead of the per-video parts."""
        self._packed = [c.packed for c in self.caches.caches]
        self.packed = all(p is not None and p.segments == self.segments for p in self._packed)
        self._packed_rows = None
        if self.packed:
            rows = np.empty(len(owners), np.int64)
            for c, packed in enumerate(self._packed):
                chosen = np.flatnonzero(owners == c)
                rows[chosen] = packed.rows([self._video_ids[i] for i in chosen])
            self._packed_rows = np.stack([owners, rows], axis=1)

    def _set_labels(self, annotations: Annotations) -> None:
        """Per-segment labels, and weak labels as class lists (offsets into one int16 array: the [C + 1]
        floats per video are made per batch)."""
        background = len(annotations.classes) - 1
        self.num_classes = len(annotations.classes)
        self.segment_labels = np.full((len(self.keys), self.segments), background, np.int64)
        self._label_offsets = np.zeros(len(self.keys) + 1, np.int64)
        classes = array("h")
        for row, key in enumerate(self.keys):
            if row < self.num_labelled:
                self.segment_labels[row] = annotations.segment_labels(key, self.segments)
                classes.extend(annotations.video_classes(key))
            else:
                classes.append(background)      # background-only videos: background everywhere
            self._label_offsets[row + 1] = len(classes)
        self._label_classes = np.frombuffer(classes, np.int16) if classes else np.zeros(0, np.int16)

    def __len__(self) -> int:
        return len(self._video_ids)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        video_id = self._video_ids[i]
        audio, visual = self.caches.read_arrays(video_id, ("audio", "visual"), dtype=None)
        if visual.shape != (self.segments, *VISUAL_SHAPE) or audio.shape != (self.segments, *AUDIO_SHAPE):
            raise UserError(f"{self.caches.cache_of(video_id).path}: video {video_id!r} has features "
                            f"{visual.shape}/{audio.shape}, expected {self.segments} segments "
                            f"of {VISUAL_SHAPE}/{AUDIO_SHAPE[0]}")
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

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self.batch(indices)

    def batch(self, indices: Sequence[int], features_dtype: torch.dtype | None = torch.float32
              ) -> dict[str, torch.Tensor]:
        """The items ``indices`` as one batch; ``features_dtype=None`` keeps the cache's storage dtype."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.in_memory:
            audio, visual = (gather_rows(array, idx, features_dtype) for array in (self._audio, self._visual))
        else:
            if self.packed:
                arrays = self._read_packed(idx)
            else:
                pairs = [self._read(int(i)) for i in idx]
                arrays = np.stack([a for a, _ in pairs]), np.stack([v for _, v in pairs])
            audio, visual = (torch.from_numpy(array) for array in arrays)
            if features_dtype is not None:
                audio, visual = audio.to(features_dtype), visual.to(features_dtype)
        return {
            "audio": audio,
            "visual": visual,
            "segment_labels": torch.from_numpy(self.segment_labels[idx]),
            "video_label": torch.from_numpy(self.video_labels(idx)),
            "index": torch.from_numpy(idx),
        }

    def video_labels(self, idx: np.ndarray) -> np.ndarray:
        """float32 ``[len(idx), C+1]``: the weak (video-level) labels of these items."""
        out = np.zeros((len(idx), self.num_classes), np.float32)
        for row, item in enumerate(idx):
            out[row, self._label_classes[self._label_offsets[item]:self._label_offsets[item + 1]]] = 1.0
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def gather_rows(array: np.ndarray, idx: np.ndarray, dtype: torch.dtype | None) -> torch.Tensor:
    """Rows ``idx`` of an in-memory array as one new tensor of ``dtype`` (None: the array's own).

    torch converts each row as it copies it: one pass over the batch and no float16 temporary,
    where NumPy's fancy index then cast made two (the cast alone cost more than the authors' whole
    per-video batch copy). float16 -> float32 is exact, so the values are the same either way.
    """
    source = torch.from_numpy(array)
    out = torch.empty((len(idx), *source.shape[1:]), dtype=dtype or source.dtype)
    for row, item in enumerate(idx.tolist()):
        out[row].copy_(source[item])
    return out


class StorageDtypeBatches(Dataset):
    """``dataset``'s batches with the features in the cache's storage dtype, for a loader feeding a GPU.

    A float16 cache then crosses to the GPU as float16 (half the bytes) and is made float32
    there, instead of by the CPU before the copy; the conversion is exact either way.
    """

    def __init__(self, dataset: FeatureDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self.dataset.batch(indices, features_dtype=None)


def already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataLoader ``collate_fn`` for datasets whose ``__getitems__`` returns a whole batch."""
    return batch
