"""Shared helpers for the cache tests: features built with numpy, no CNN needed."""
from __future__ import annotations

import zlib

import numpy as np

from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig

CONFIG = ExtractorConfig(visual_weights="random:7", audio_weights="random:7")


def make_features(video_id: str, segments: int = 3, has_audio: bool = True) -> VideoFeatures:
    """Deterministic per-id features, so a test can recompute what it expects to read back."""
    rng = np.random.default_rng(zlib.crc32(video_id.encode("utf-8")))
    visual = rng.standard_normal((segments, 7, 7, 512)).astype(np.float32)
    audio = rng.standard_normal((segments, 128)).astype(np.float32)
    if not has_audio:
        audio[:] = 0
    return VideoFeatures(video_id, visual, audio, duration=segments - 0.25, source_fps=29.97,
                         has_audio=has_audio, notes=[f"note for {video_id}"])
