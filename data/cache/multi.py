"""Several caches read as one, with one rule for a video found in two of them: refuse.

Taking either copy would be a guess, and a video id in both a training and a
test cache is a training video scored as a test one (the duplicate usually
means a split was extracted twice or caches were copied into each other).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from avepipe.errors import UserError
from avepipe.data.cache.layout import PartSummary, positions
from avepipe.data.cache.reader import FeatureCache
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import require_same_extractor


class CacheSet:
    """Caches of one extractor read as one: ``config``, ``ids``, ``read``, ``read_arrays``, ``summary``.

    Refuses caches made by different extractors, and a video id present in
    more than one cache (one error line naming the video and both caches).
    """

    def __init__(self, caches: str | Path | FeatureCache | Sequence[str | Path | FeatureCache]) -> None:
        """``caches``: paths to open, or caches already open (shared as they are, not opened again)."""
        caches = [caches] if isinstance(caches, (str, Path, FeatureCache)) else list(caches)
        if not caches:
            raise ValueError("CacheSet needs at least one cache")
        self.caches = [c if isinstance(c, FeatureCache) else FeatureCache(c) for c in caches]
        first = self.caches[0]
        for cache in self.caches[1:]:
            require_same_extractor(cache.config, first.config, str(cache.path), str(first.path),
                                   (str(cache.path), str(first.path)), "they cannot be mixed")
        self.config = first.config
        # All ids sorted, with the position of their cache: a few arrays, no dict entry per video.
        ids = np.concatenate([c.table.ids for c in self.caches])
        owner = np.repeat(np.arange(len(self.caches)), [len(c) for c in self.caches])
        order = np.argsort(ids, kind="stable")
        self._ids, self._owner = ids[order], owner[order]
        twice = np.flatnonzero(self._ids[1:] == self._ids[:-1])
        if len(twice):
            video_id, (earlier, later) = self._ids[twice[0]], self._owner[twice[0]:twice[0] + 2]
            raise UserError(f"{self.caches[later].path}: video {video_id!r} is also in {self.caches[earlier].path}; "
                            f"a video may be in only one of the caches read together (remove it from one)")

    @property
    def paths(self) -> list[Path]:
        return [c.path for c in self.caches]

    @property
    def ids(self) -> list[str]:
        return self._ids.tolist()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.owners([video_id])[0] >= 0

    def owners(self, video_ids: Sequence[str]) -> np.ndarray:
        """Index into ``caches`` of the cache holding each id, -1 where none does (binary search)."""
        found = positions(self._ids, video_ids)
        return np.where(found >= 0, self._owner[found], -1)

    def cache_of(self, video_id: str) -> FeatureCache:
        """The cache holding ``video_id``."""
        owner = int(self.owners([video_id])[0]) if isinstance(video_id, str) else -1
        if owner < 0:
            raise KeyError(f"{video_id!r} is in none of the caches {', '.join(map(str, self.paths))}")
        return self.caches[owner]

    def summary(self, video_id: str) -> PartSummary:
        return self.cache_of(video_id).summary(video_id)

    def read(self, video_id: str) -> VideoFeatures:
        return self.cache_of(video_id).read(video_id)

    def read_arrays(self, video_id: str, keys: Sequence[str] = ("visual", "audio"),
                    dtype: str | np.dtype | None = "float32") -> tuple[np.ndarray, ...]:
        return self.cache_of(video_id).read_arrays(video_id, keys, dtype)
