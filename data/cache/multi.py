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
from avepipe.data.cache.layout import PartSummary
from avepipe.data.cache.reader import FeatureCache
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import require_same_extractor


class CacheSet:
    """Caches of one extractor read as one: ``config``, ``ids``, ``read``, ``read_arrays``, ``summary``.

    Refuses caches made by different extractors, and a video id present in
    more than one cache (one error line naming the video and both caches).
    """

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not paths:
            raise ValueError("CacheSet needs at least one cache")
        self.caches = [FeatureCache(p) for p in paths]
        first = self.caches[0]
        for cache in self.caches[1:]:
            require_same_extractor(cache.config, first.config, str(cache.path), str(first.path),
                                   (str(cache.path), str(first.path)), "they cannot be mixed")
        self.config = first.config
        self._owner: dict[str, FeatureCache] = {}
        for cache in self.caches:
            for video_id in cache.ids:
                owner = self._owner.setdefault(video_id, cache)
                if owner is not cache:
                    raise UserError(f"{cache.path}: video {video_id!r} is also in {owner.path}; a video may be in "
                                    f"only one of the caches read together (remove it from one)")

    @property
    def paths(self) -> list[Path]:
        return [c.path for c in self.caches]

    @property
    def ids(self) -> list[str]:
        return sorted(self._owner)

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._owner

    def cache_of(self, video_id: str) -> FeatureCache:
        """The cache holding ``video_id``."""
        try:
            return self._owner[video_id]
        except KeyError:
            raise KeyError(f"{video_id!r} is in none of the caches {', '.join(map(str, self.paths))}") from None

    def summary(self, video_id: str) -> PartSummary:
        return self.cache_of(video_id).summary(video_id)

    def read(self, video_id: str) -> VideoFeatures:
        return self.cache_of(video_id).read(video_id)

    def read_arrays(self, video_id: str, keys: Sequence[str] = ("visual", "audio"),
                    dtype: str | np.dtype | None = "float32") -> tuple[np.ndarray, ...]:
        return self.cache_of(video_id).read_arrays(video_id, keys, dtype)
