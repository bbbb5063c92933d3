"""Metrics on hand-made cases whose answers are worked out by hand in the comments."""
from __future__ import annotations

import math

import numpy as np
import pytest

from avepipe.event.metrics import (Interval, confusion_matrix, interval_scores, match_intervals,
                             merge_intervals, per_class_accuracy, segment_accuracy, temporal_iou)

BG = 3  # classes 0, 1, 2 and background 3


def test_segment_accuracy_counts_background_segments():
    truth = np.array([[3, 0, 0, 3], [1, 1, 3, 3]])
    pred = np.array([[3, 0, 1, 3], [1, 1, 1, 0]])
    # right: 3,0,3 | 1,1 -> 5 of 8
    assert segment_accuracy(pred, truth) == pytest.approx(5 / 8)


def test_segment_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        segment_accuracy(np.zeros(3), np.zeros(4))


def test_confusion_matrix_rows_are_truth():
    truth = np.array([0, 0, 1, 3])
    pred = np.array([0, 1, 1, 0])
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1
    expected[0, 1] = 1
    expected[1, 1] = 1
    expected[3, 0] = 1
    np.testing.assert_array_equal(confusion_matrix(pred, truth, 4), expected)


def test_per_class_accuracy_is_recall_and_nan_when_absent():
    truth = np.array([0, 0, 0, 0, 1, 3, 3])
    pred = np.array([0, 0, 0, 1, 1, 3, 0])
    acc = per_class_accuracy(pred, truth, 4)
    assert acc[0] == pytest.approx(0.75)
    assert acc[1] == pytest.approx(1.0)
    assert math.isnan(acc[2])
    assert acc[3] == pytest.approx(0.5)


def test_merge_intervals_splits_on_label_change_and_skips_background():
    labels = np.array([3, 0, 0, 1, 1, 1, 3, 3, 0, 0])
    conf = np.array([0.9, 0.2, 0.4, 0.5, 0.6, 0.7, 0.1, 0.1, 1.0, 0.0])
    got = merge_intervals(labels, conf, BG)
    assert [(i.start, i.end, i.label) for i in got] == [(1, 3, 0), (3, 6, 1), (8, 10, 0)]
    assert [i.confidence for i in got] == pytest.approx([0.3, 0.6, 0.5])


def test_merge_intervals_all_background_and_all_event():
    assert merge_intervals(np.full(5, BG), None, BG) == []
    only = merge_intervals(np.full(5, 2), None, BG)
    assert only == [Interval(0, 5, 2, 1.0)]


def test_temporal_iou():
    assert temporal_iou(Interval(0, 4, 0), Interval(2, 6, 0)) == pytest.approx(2 / 6)
    assert temporal_iou(Interval(0, 2, 0), Interval(2, 4, 0)) == 0.0
    assert temporal_iou(Interval(1, 5, 0), Interval(1, 5, 1)) == 1.0


def test_match_requires_label_and_iou_and_is_one_to_one():
    truth = [Interval(0, 4, 0), Interval(6, 10, 1)]
    predicted = [
        Interval(0, 3, 0),   # IoU 3/4 with truth[0]: match
        Interval(1, 4, 0),   # also IoU 3/4 with truth[0], but truth[0] already taken
        Interval(6, 10, 2),  # right place, wrong label
    ]
    matches = match_intervals(predicted, truth)
    assert len(matches) == 1 and matches[0][1] == 0
    # IoU exactly 0.5 counts: [0,2) vs [0,4)
    assert match_intervals([Interval(0, 2, 0)], [Interval(0, 4, 0)]) == [(0, 0)]
    # IoU 1/3 does not
    assert match_intervals([Interval(0, 2, 0)], [Interval(0, 6, 0)]) == []


def test_interval_scores_precision_recall_f1():
    truth = np.array([[0, 0, 0, 0, 3, 3, 1, 1, 1, 1],
                      [3, 3, 2, 2, 2, 2, 3, 3, 3, 3]])
    pred = np.array([[0, 0, 0, 3, 3, 3, 2, 2, 2, 2],   # [0,3) vs [0,4): IoU .75 TP; [6,10) label 2 vs 1: FP
                     [3, 3, 2, 3, 3, 3, 3, 3, 2, 2]])  # [2,3) vs [2,6): IoU .25 FP; [8,10) FP
    scores = interval_scores(pred, truth, BG)
    # 3 true intervals, 4 predicted, 1 match
    assert scores["true_positives"] == 1
    assert scores["predicted_intervals"] == 4
    assert scores["true_intervals"] == 3
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))


def test_interval_scores_empty_cases():
    bg = np.full((2, 5), BG)
    assert interval_scores(bg, bg, BG)["f1"] == 1.0
    event = np.full((2, 5), 0)
    s = interval_scores(bg, event, BG)
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
