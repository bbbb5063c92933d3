"""Windowing of long videos: every second covered, scores averaged over exactly the covering windows."""
from __future__ import annotations

import numpy as np
import pytest

from avepipe.windows import average_window_matrices, average_window_scores, window_starts


def test_window_starts_cover_a_37_second_video_with_full_windows():
    starts = window_starts(37, 10, 5)
    assert starts == [0, 5, 10, 15, 20, 25, 27]
    covered = np.zeros(37, int)
    for s in starts:
        covered[s:s + 10] += 1
    assert covered.min() >= 1
    assert all(s + 10 <= 37 for s in starts)


@pytest.mark.parametrize("length,expected", [(3, [0]), (10, [0]), (11, [0, 1]), (15, [0, 5]), (20, [0, 5, 10])])
def test_window_starts_edges(length, expected):
    assert window_starts(length, 10, 5) == expected


def test_window_starts_rejects_nonsense():
    with pytest.raises(ValueError):
        window_starts(0, 10, 5)
    with pytest.raises(ValueError):
        window_starts(5, 10, 0)


def _brute_force_mean(length, window, stride, window_fn):
    """Independent reference: per second, the list of every covering window's score for it."""
    seen = [[] for _ in range(length)]
    start = 0
    starts = set()
    while start + window <= length:
        starts.add(start)
        start += stride
    starts.add(max(0, length - window))
    for s in sorted(starts):
        size = min(window, length)
        scores = window_fn(s, size)
        for j in range(size):
            seen[s + j].append(scores[j])
    return np.array([np.mean(v, axis=0) for v in seen])


def test_average_window_scores_matches_brute_force_on_37_seconds():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(37, 40, 3))  # score of second t seen from a window starting at s: table[t, s]

    def one_window(start, size):
        return np.stack([table[start + j, start] for j in range(size)])

    calls = []

    def score_windows(starts, size):
        calls.append(len(starts))
        return np.stack([one_window(s, size) for s in starts])

    averaged = average_window_scores(score_windows, 37, 10, 5, batch_size=3)
    assert averaged.shape == (37, 3)
    np.testing.assert_allclose(averaged, _brute_force_mean(37, 10, 5, one_window), rtol=1e-6)
    assert max(calls) <= 3 and sum(calls) == 7
    # second 0 is seen only by the window at 0; second 28 by windows 20, 25 and 27
    np.testing.assert_allclose(averaged[0], table[0, 0], rtol=1e-6)
    np.testing.assert_allclose(averaged[28], (table[28, 20] + table[28, 25] + table[28, 27]) / 3, rtol=1e-6)


def test_short_video_is_one_shorter_window():
    sizes = []

    def score_windows(starts, size):
        sizes.append((list(starts), size))
        return np.arange(size, dtype=float)[None, :, None].repeat(len(starts), 0)

    averaged = average_window_scores(score_windows, 4, 10, 5)
    assert sizes == [([0], 4)]
    np.testing.assert_array_equal(averaged[:, 0], [0, 1, 2, 3])


def test_matrices_are_averaged_and_unrelated_pairs_are_nan():
    a = np.full((10, 10), 1.0)
    b = np.full((10, 10), 3.0)
    merged = average_window_matrices([(0, a), (5, b)], 15)
    assert merged[0, 0] == 1.0 and merged[14, 14] == 3.0
    assert merged[7, 8] == 2.0           # both windows hold seconds 7 and 8
    assert np.isnan(merged[0, 14])       # 0 and 14 never share a window
