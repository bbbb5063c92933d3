"""A torch Dataset of cached features and their labels, streamed from disk or held in memory.

Streaming is the default so that a cache larger than RAM trains: each read opens
and closes one part file, so no HDF5 handle crosses a fork into DataLoader
workers. Small caches are loaded once (``in_memory="auto"`` decides from the
estimated size and the available RAM) because per-item HDF5 reads then dominate.

Batches are fetched whole through ``__getitems__`` (a DataLoader with
``collate_fn=already_batched``), so an in-memory batch is one fancy-index copy.

Weakly supervised training on AVE also uses the 178 background-only ("noisy")
videos: pass their cache as ``background_caches``; every video in such a cache is
labelled background in all segments and ``[0, ..., 0, 1]`` at video level, which is
exactly ``labels_noisy.h5``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from avepipe.errors import UserError
from avepipe.data.annotations import Annotations
from avepipe.data.cache import CacheSet
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
    """

    def __init__(self, caches: Sequence[str | Path], annotations: Annotations, ids: Sequence[str],
                 segments: int | None = None, in_memory: bool | str = "auto",
                 background_caches: Sequence[str | Path] = ()):
        self.caches = CacheSet([*caches, *background_caches])
        in_labelled = {vid for cache in self.caches.caches[:len(caches)] for vid in cache.ids}
        missing = [k for k in ids if annotations.source_id(k) not in in_labelled]
        if missing:
            raise UserError(f"{caches[0]}: {len(missing)} annotated videos are not in the cache "
                            f"(first: {missing[0]!r})")
        self.keys: list[str] = list(ids)
        self._video_ids = [annotations.source_id(k) for k in ids]      # file ids, not annotation keys
        self.num_labelled = len(self.keys)
        for cache in self.caches.caches[len(caches):]:
            self.keys += [f"background:{vid}" for vid in cache.ids]
            self._video_ids += cache.ids
        if not self._video_ids:
            raise UserError(f"{caches[0]}: no videos to load")
        self.segments = segments or self.caches.summary(self._video_ids[0]).segments

        labelled = self.keys[:self.num_labelled]
        background = len(annotations.classes) - 1
        extra = len(self.keys) - self.num_labelled
        self.segment_labels = np.concatenate([
            annotations.segment_label_matrix(labelled, self.segments),
            np.full((extra, self.segments), background, np.int64)])
        bg_label = np.zeros((extra, len(annotations.classes)), np.float32)
        bg_label[:, background] = 1.0
        self.video_labels = np.concatenate([annotations.video_label_matrix(labelled), bg_label])

        self._audio = self._visual = None
        if in_memory == "auto":
            in_memory = estimated_bytes(len(self), self.segments) < MEMORY_SHARE * available_memory_bytes()
        self.in_memory = bool(in_memory)
        if self.in_memory:
            self._load_all()

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

    def _load_all(self) -> None:
        """Read every video once, keeping the storage dtype (float16 caches stay half the size)."""
        from tqdm import tqdm

        audio, visual = None, None
        for i in tqdm(range(len(self)), desc="loading features", unit="video", leave=False):
            a, v = self._read(i)
            if audio is None:
                audio = np.empty((len(self), *a.shape), a.dtype)
                visual = np.empty((len(self), *v.shape), v.dtype)
            audio[i], visual[i] = a, v
        self._audio, self._visual = audio, visual

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.in_memory:
            audio, visual = self._audio[idx], self._visual[idx]
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


def already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataLoader ``collate_fn`` for datasets whose ``__getitems__`` returns a whole batch."""
    return batch
