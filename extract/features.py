"""The per-video record that flows from extraction into the cache."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Per-segment feature shapes, the contract between extraction, cache and models:
# a VGG-19 pool5 map (mean over the segment's frames) and a VGGish embedding.
VISUAL_SHAPE = (7, 7, 512)
AUDIO_SHAPE = (128,)
SHAPES = {"visual": VISUAL_SHAPE, "audio": AUDIO_SHAPE}


@dataclass
class VideoFeatures:
    """Features of one video: ``visual`` ``[T, 7, 7, 512]`` and ``audio`` ``[T, 128]``.

    ``notes`` carries non-fatal findings (e.g. "decoded past a corrupt packet")
    so that they reach the user's summary instead of being lost.
    """

    video_id: str
    visual: np.ndarray
    audio: np.ndarray
    duration: float
    source_fps: float
    has_audio: bool
    has_video: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def segments(self) -> int:
        return int(self.visual.shape[0])
