"""Generated test videos for the benchmarks: real H.264 + AAC files with content that changes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from avepipe.data.video_writer import tone, write_test_video


def moving_frames(count: int, width: int, height: int, seed: int, hold: int = 1):
    """``count`` RGB frames of a random picture that shifts every ``hold`` frames (new pixels, so no reuse)."""
    base = np.random.default_rng(seed).integers(0, 256, (height, width + count, 3), dtype=np.uint8)
    for index in range(count):
        offset = index // hold
        yield base[:, offset:offset + width]


def write_clip(path: Path, seconds: float, fps: int, width: int = 640, height: int = 360, seed: int = 0,
               hold_seconds: float | None = None) -> Path:
    """H.264 + AAC clip; ``hold_seconds`` holds each picture that long (static shots), else every frame moves.

    Static shots are encoded losslessly so their frames decode to identical pixels (as real
    static shots mostly do at higher bit rates): only then can they share a CNN pass.
    """
    count = int(round(seconds * fps))
    hold = max(1, int(round(hold_seconds * fps))) if hold_seconds else 1
    frames = moving_frames(count, width, height, seed, hold)
    audio = np.concatenate([tone(300.0 + 50 * (t % 20), 1.0) for t in range(int(np.ceil(seconds)))])
    return write_test_video(path, frames, fps, audio=audio[:int(seconds * 16000)], video_codec="libx264",
                            options={"preset": "veryfast", **({"qp": "0"} if hold_seconds else {"crf": "23"})})
