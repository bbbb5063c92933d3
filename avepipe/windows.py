"""Run a model trained on T_train-second clips over a video of any length.

The PSP connections relate every segment of a window to every other one, so a
model trained on 10-second clips is run on overlapping 10-second windows and
each second's score is the mean over the windows that contain it. Only one
batch of windows is in memory at a time.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """First segment of each window covering ``[0, length)``.

    Windows start every ``stride`` segments; a last window is aligned to the end
    so that every window has the full ``window`` length (when the video has at
    least that many segments) and every segment is covered. A video shorter than
    ``window`` is one shorter window.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got {window} and {stride}")
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def average_window_scores(
    score_windows: Callable[[list[int], int], np.ndarray],
    length: int,
    window: int,
    stride: int,
    batch_size: int = 16,
) -> np.ndarray:
    """Per-segment scores ``[length, S]``: the mean over every window covering each segment.

    ``score_windows(starts, size)`` returns the scores ``[len(starts), size, S]``
    of the windows ``[s, s + size)`` for ``s`` in ``starts``; it is called with at
    most ``batch_size`` windows at a time.
    """
    starts = window_starts(length, window, stride)
    size = min(window, length)
    sums: np.ndarray | None = None
    counts = np.zeros(length, dtype=np.float64)
    for first in range(0, len(starts), batch_size):
        batch = starts[first:first + batch_size]
        scores = np.asarray(score_windows(batch, size), dtype=np.float64)
        if sums is None:
            sums = np.zeros((length, scores.shape[-1]), dtype=np.float64)
        for start, window_scores in zip(batch, scores):
            sums[start:start + size] += window_scores
            counts[start:start + size] += 1
    return (sums / counts[:, None]).astype(np.float32)


def average_window_matrices(matrices: list[tuple[int, np.ndarray]], length: int) -> np.ndarray:
    """Assemble per-window ``[w, w]`` matrices into one ``[length, length]`` matrix.

    Entries seen by several windows are averaged; pairs of seconds that never
    share a window (further apart than the window) are NaN: the model never
    related them, and a picture must not pretend it did.
    """
    sums = np.zeros((length, length), dtype=np.float64)
    counts = np.zeros((length, length), dtype=np.float64)
    for start, matrix in matrices:
        size = matrix.shape[0]
        sums[start:start + size, start:start + size] += matrix
        counts[start:start + size, start:start + size] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
