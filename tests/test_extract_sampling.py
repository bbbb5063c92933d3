"""Sampling targets and frame selection on hand-made PTS lists (no decoding)."""
from __future__ import annotations

import numpy as np
import pytest

from avepipe.extract.sampling import frame_for_targets, segment_count, target_times


def test_target_times_are_slot_starts_segment_major():
    times = target_times(2, 4)
    np.testing.assert_array_equal(times, [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75])
    assert target_times(10, 16).shape == (160,)
    assert target_times(10, 16)[16 * 3 + 5] == 3 + 5 / 16


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
