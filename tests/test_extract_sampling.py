"""Sampling targets and frame selection on hand-made PTS lists (no decoding)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avepipe.extract.decode import in_seconds
from avepipe.extract.sampling import frame_for_targets, segment_count, target_time, target_times


def test_target_times_are_slot_starts_segment_major():
    times = target_times(2, 4)
    np.testing.assert_array_equal(times, [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75])
    assert target_times(10, 16).shape == (160,)
    assert target_times(10, 16)[16 * 3 + 5] == 3 + 5 / 16


@pytest.mark.parametrize("fps", [16, 24, 7])
def test_one_target_at_a_time_is_bit_identical_to_the_grid(fps):
    grid = target_times(40, fps)
    one_by_one = [target_time(index, fps) for index in range(len(grid))]
    assert all(type(t) is float for t in one_by_one)
    assert np.array_equal(grid, np.asarray(one_by_one))


def test_timestamps_in_seconds_round_as_the_exact_fraction_does():
    rng = np.random.default_rng(0)
    bases = [Fraction(1, 15360), Fraction(1, 90000), Fraction(1001, 30000), Fraction(1, 44100), Fraction(1, 3)]
    bases += [Fraction(int(n), int(d)) for n, d in rng.integers(1, 10**6, (50, 2))]
    for base in bases:
        for ticks in [0, 1, -7, *rng.integers(-10**6, 10**12, 200).tolist()]:
            assert in_seconds(ticks, base) == float(ticks * base)


def test_10fps_source_repeats_frames():
    pts = np.arange(20) / 10  # 2 s at 10 fps
    chosen = frame_for_targets(pts, target_times(1, 16))
    # target k/16 shows frame floor(10 k / 16)
    np.testing.assert_array_equal(chosen, [int(np.floor(10 * k / 16 + 1e-9)) for k in range(16)])
    assert len(set(chosen.tolist())) == 10


def test_60fps_source_skips_frames():
    pts = np.arange(120) / 60
    chosen = frame_for_targets(pts, target_times(2, 16))
    expected = [int(round(60 * (t + k / 16) * 1e6) // 1e6) for t in range(2) for k in range(16)]
    np.testing.assert_array_equal(chosen, expected)
    assert chosen[1] == 3 and chosen[2] == 7  # 1/16 s = 3.75 frames: skips


def test_exact_pts_hit_takes_that_frame_not_the_previous():
    pts = np.array([0.0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(frame_for_targets(pts, [0.25, 0.5, 0.4999999]), [1, 2, 1])


def test_variable_frame_rate():
    pts = np.array([0.0, 0.03, 0.5, 0.52, 0.9, 1.4])
    chosen = frame_for_targets(pts, target_times(2, 4))
    # targets 0, .25, .5, .75, 1, 1.25, 1.5, 1.75
    np.testing.assert_array_equal(chosen, [0, 1, 2, 3, 4, 4, 5, 5])


def test_targets_before_first_frame_take_first_frame():
    # stream whose first frame appears 0.2 s after the stream start (start_time offset)
    pts = np.array([0.2, 0.4, 0.6])
    np.testing.assert_array_equal(frame_for_targets(pts, [0.0, 0.1, 0.2, 0.5, 10.0]), [0, 0, 0, 1, 2])


@pytest.mark.parametrize("duration, fixed, expected", [
    (10.0, None, 10), (9.2, None, 10), (3.0000000001, None, 3), (0.3, None, 1), (25.0, 10, 10), (2.0, 5, 5),
])
def test_segment_count(duration, fixed, expected):
    assert segment_count(duration, fixed) == expected


def test_no_frames_is_an_error():
    with pytest.raises(ValueError):
        frame_for_targets(np.array([]), [0.0])
