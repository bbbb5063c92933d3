"""Feature-level synthetic set for sound-source localisation, with known boxes.

Each video has one sounding class whose object moves to a new place every second; objects
of other classes are present but silent (distractors). On the 7x7x512 grid an object adds
its class's 512-d pattern at the cells it covers; the audio is the sounding class's 128-d
pattern; both get noise. A localiser must find the object that matches the audio, not just
any object: that is exactly what the boxes test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avepipe.extract.features import VideoFeatures
from avepipe.extract.provenance import ExtractorConfig

GRID = 7


@dataclass(frozen=True)
class MovingSourceSpec:
    """Knobs of the generator; defaults give a set FNAC solves but not trivially."""

    videos: int = 48
    seconds: int = 10
    classes: int = 6
    object_cells: int = 3            # objects are object_cells x object_cells grid cells
    distractors: int = 1             # silent objects of other classes per frame
    frame_size: tuple[int, int] = (224, 224)
    visual_noise: float = 0.6        # std of the |Gaussian| background on every cell
    audio_noise: float = 0.5
    seed: int = 0                    # layout and noise of this set
    world_seed: int = 0              # the class patterns: same world_seed = same classes across sets


class InMemoryCache:
    """The read side of ``data.cache.FeatureCache`` (``config``, ``ids``, ``read``) over a list."""

    def __init__(self, features: list[VideoFeatures], config: ExtractorConfig | None = None) -> None:
        self._by_id = {f.video_id: f for f in features}
        self.config = config or ExtractorConfig(visual_weights="random:0", audio_weights="random:0")

    @property
    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def read(self, video_id: str) -> VideoFeatures:
        return self._by_id[video_id]


def _place(rng: np.random.Generator, size: int, taken: np.ndarray) -> tuple[int, int] | None:
    """Random top-left cell for a size x size object not overlapping ``taken``; None if full."""
    free = [(r, c) for r in range(GRID - size + 1) for c in range(GRID - size + 1)
            if not taken[r:r + size, c:c + size].any()]
    return free[rng.integers(len(free))] if free else None


def make_moving_sources(spec: MovingSourceSpec = MovingSourceSpec()) -> tuple[list[VideoFeatures], dict]:
    """Generate ``(features, boxes)``; ``boxes`` has the boxes.json layout read by ``load_boxes``."""
    world = np.random.default_rng(spec.world_seed)
    visual_patterns = np.abs(world.normal(size=(spec.classes, 512))).astype(np.float32)
    audio_patterns = world.normal(size=(spec.classes, 128)).astype(np.float32)
    rng = np.random.default_rng(spec.seed)
    cell_w, cell_h = spec.frame_size[0] / GRID, spec.frame_size[1] / GRID
    size = spec.object_cells
    features, boxes = [], {}
    for v in range(spec.videos):
        video_id = f"moving{v:04d}"
        sounding = v % spec.classes
        visual = np.abs(rng.normal(scale=spec.visual_noise, size=(spec.seconds, GRID, GRID, 512))).astype(np.float32)
        audio = (audio_patterns[sounding] + rng.normal(scale=spec.audio_noise, size=(spec.seconds, 128))).astype(np.float32)
        video_boxes = {}
        for t in range(spec.seconds):
            taken = np.zeros((GRID, GRID), dtype=bool)
            others = rng.permutation([c for c in range(spec.classes) if c != sounding])[:spec.distractors]
            for i, cls in enumerate([sounding, *others]):
                corner = _place(rng, size, taken)
                if corner is None:
                    break
                r, c = corner
                taken[r:r + size, c:c + size] = True
                visual[t, r:r + size, c:c + size] += visual_patterns[cls]
                if i == 0:
                    video_boxes[str(t)] = [c * cell_w, r * cell_h, (c + size) * cell_w, (r + size) * cell_h]
        features.append(VideoFeatures(video_id=video_id, visual=visual, audio=audio, duration=float(spec.seconds),
                                      source_fps=16.0, has_audio=True))
        boxes[video_id] = {"frame_size": list(spec.frame_size), "boxes": video_boxes}
    return features, boxes
