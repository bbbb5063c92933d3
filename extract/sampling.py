"""Which decoded frame each sampling target uses: PTS-timed, never index / nominal fps.

Segment t covers [t, t+1) seconds; its ``fps`` targets are t + k/fps, k = 0..fps-1
(the start of each 1/fps slot, as the original AVE scripts sampled). A target takes
the frame being displayed at that time: the last frame whose PTS <= target. Times
are seconds from the stream's start (start_time / first PTS), so variable-frame-rate
and odd-fps files sample the same moments as any other file.
"""
from __future__ import annotations

import math

import numpy as np


def segment_count(duration: float, segments: int | None = None) -> int:
    """T: the fixed ``segments`` when given, else ceil(duration) (at least 1)."""
    if segments is not None:
        return int(segments)
    # Round away float noise first: a 3.0000000001 s stream is a 3-segment video.
    return max(1, math.ceil(round(duration, 6)))


def target_time(index: np.ndarray | int, fps: int) -> np.ndarray | float:
    """Time of the ``index``-th target on the whole-video grid: t + k/fps with t, k = divmod(index, fps).

    The one formula shared by ``target_times`` and the streaming decoder, so both
    see bit-identical targets.
    """
    t, k = np.divmod(index, fps)
    return t + k / fps


def target_times(segments: int, fps: int) -> np.ndarray:
    """``[segments * fps]`` float64 target times t + k/fps, segment-major."""
    return np.asarray(target_time(np.arange(segments * fps), fps), dtype=np.float64)


def frame_for_targets(pts_seconds: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the last frame with PTS <= target, for every target (before the first frame -> frame 0).

    ``pts_seconds`` must be sorted ascending (presentation order).
    """
    pts_seconds = np.asarray(pts_seconds, dtype=np.float64)
    if pts_seconds.size == 0:
        raise ValueError("no frames to sample from")
    index = np.searchsorted(pts_seconds, np.asarray(targets, dtype=np.float64), side="right") - 1
    return np.clip(index, 0, None).astype(np.int64)
