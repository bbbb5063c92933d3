"""Helpers for the training tests: the generated features (benchmarks.generators.synthetic_features) and caches of them."""
from __future__ import annotations

from pathlib import Path

from benchmarks.generators.synthetic_features import T, make_videos, tensor_splits
from avepipe.data.cache import CacheWriter
from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig

__all__ = ["T", "make_videos", "tensor_splits", "write_cache"]    # re-exported for the test files


def write_cache(path: Path, ids, audio, visual, config: ExtractorConfig | None = None, dtype: str = "float32"):
    config = config or ExtractorConfig(segments=T)
    with CacheWriter(path, config, dtype=dtype) as writer:
        for vid, a, v in zip(ids, audio, visual):
            writer.write(VideoFeatures(vid, v, a, duration=float(len(a)), source_fps=16.0, has_audio=True))
    return path
