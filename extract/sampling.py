"""Which decoded frame each sampling target uses: PTS-timed, never index / nominal fps --
except for ``--preset ave``, whose point is to reproduce the original AVE scripts' index
formula (``ave_frame_indices``, at the end of this module).

Segment t covers [t, t+1) seconds; its ``fps`` targets are t + k/fps, k = 0..fps-1
(the start of each 1/fps slot, as the original AVE scripts sampled). A target takes
the frame being displayed at that time: the last frame whose PTS <= target. Times
are seconds from the stream's start (start_time / first PTS), so variable-frame-rate
and odd-fps files sample the same moments as any other file.
"""
from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000  # Hz, the audio rate VGGish reads (kept here, not in logmel: decoder workers need no scipy)


def segment_count(duration: float, segments: int | None = None) -> int:
    """T: the fixed ``segments`` when given, else ceil(duration) (at least 1)."""
    if segments is not None:
        return int(segments)
    # Round away float noise first: a 3.0000000001 s stream is a 3-segment video.
    return max(1, math.ceil(round(duration, 6)))


def target_time(index: np.ndarray | int, fps: int) -> np.ndarray | float:
    """Time of the ``index``-th target on the whole-video grid: t + k/fps with t, k = divmod(index, fps).

    The one formula shared by ``target_times`` and the streaming decoder, so both
    see bit-identical targets. (The builtin ``divmod`` is NumPy's for arrays and plain integer
    arithmetic for an int: the decoder asks for one target at a time, thousands per video.)
    """
    t, k = divmod(index, fps)
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


# ---- ``--preset ave``: the frame indices of the original AVE scripts -------------------------------------

AVE_CLIP_SECONDS = 10  # the recipe is defined on 10-second clips; longer videos are 10-second blocks


def ffmpeg_reported_duration(container_duration_us: int) -> float:
    """The container duration as FFmpeg prints it ("Duration: 00:00:10.01"): rounded to 0.01 s.

    FFmpeg adds 5000 us and truncates to centiseconds; the 2018 FFmpeg reader parsed that text.
    """
    return ((int(container_duration_us) + 5000) // 10000) / 100


def ffmpeg_reported_rate(rate: float) -> float:
    """A frame rate as FFmpeg prints ``tbr`` (two decimals unless whole): 30000/1001 -> 29.97."""
    return round(float(rate), 2)


def ave_segment_count(duration: float, segments: int | None = None) -> int:
    """T for ``--preset ave``: the fixed ``segments``, else the duration rounded to whole seconds (at least 1).

    Rounded, not ceil: an AVE clip of 10.01 s is 10 segments, as the original made it.
    """
    if segments is not None:
        return int(segments)
    return max(1, math.floor(duration + 0.5))


def ave_frame_indices(duration: float, rate: float, segments: int, fps: int = 16,
                      block_rate: float | None = None) -> np.ndarray:
    """``[segments * fps]`` frame indices (presentation order) of the AVE recipe, segment-major.

    ``duration`` and ``rate`` are what the FFmpeg reader reported (``ffmpeg_reported_*``).
    Block b holds segments [10b, 10b + S_b), S_b = min(10, segments - 10b), and starts at
    frame round(10 b * block_rate) (the stream's exact rate; default ``rate``). It is the clip the original would have seen: its frame count
    n = int(round(L * rate)), with L = 10 s, or the rest of the video for the block that
    reaches the end (so one 10.01 s AVE clip keeps its own n). Then
    frame_interval = int(n / S_b) (the original's n / 10 for a whole block) and target i
    of segment l takes frame int(l * frame_interval + i / fps * frame_interval).
    """
    indices = []
    for block in range(-(-segments // AVE_CLIP_SECONDS)):
        first_segment = block * AVE_CLIP_SECONDS
        count = min(AVE_CLIP_SECONDS, segments - first_segment)
        remaining = duration - first_segment
        seconds = remaining if remaining < count + 0.5 else count
        frames = max(0, int(round(seconds * rate)))
        interval = int(frames / count)
        start = int(round(first_segment * (block_rate or rate)))
        indices += [start + int(l * interval + (i * 1.0 / fps) * interval) for l in range(count) for i in range(fps)]
    return np.asarray(indices, dtype=np.int64)
