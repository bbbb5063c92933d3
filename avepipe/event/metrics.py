"""Evaluation metrics on per-segment labels, pure NumPy.

The paper reports only segment accuracy; users also need to know whether the
events they care about were found as intervals, hence the interval metrics.
Intervals are in segment units (one segment = one second on AVE), ``end``
exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A run of consecutive segments with the same event label; ``end`` is exclusive."""

    start: int
    end: int
    label: int
    confidence: float = 1.0

    @property
    def length(self) -> int:
        return self.end - self.start


def segment_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The paper's metric: fraction of (video, segment) pairs whose class is right, background included."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"shape mismatch: predicted {predicted.shape} vs truth {truth.shape}")
    if truth.size == 0:
        raise ValueError("no segments to evaluate")
    return float(np.mean(predicted == truth))


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """``[K, K]`` int64 counts, rows = true class, columns = predicted class."""
    predicted, truth = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    flat = truth.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy over the segments of each true class (its recall); NaN for classes absent from ``truth``."""
    matrix = confusion_matrix(predicted, truth, num_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def merge_intervals(labels: np.ndarray, confidences: np.ndarray | None, background_index: int) -> list[Interval]:
    """Merge consecutive segments of the same non-background label into intervals.

    An interval's confidence is the mean of its segments' confidences (1.0 when
    ``confidences`` is None).
    """
    labels = np.asarray(labels).ravel()
    conf = np.ones(len(labels)) if confidences is None else np.asarray(confidences, dtype=np.float64).ravel()
    if len(conf) != len(labels):
        raise ValueError(f"{len(labels)} labels but {len(conf)} confidences")
    intervals: list[Interval] = []
    start = 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if int(labels[start]) != background_index:
                intervals.append(Interval(start, t, int(labels[start]), float(conf[start:t].mean())))
            start = t
    return intervals


def temporal_iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two half-open intervals."""
    inter = max(0, min(a.end, b.end) - max(a.start, b.start))
    union = (a.end - a.start) + (b.end - b.start) - inter
    return inter / union if union > 0 else 0.0


def match_intervals(predicted: Sequence[Interval], truth: Sequence[Interval],
                    iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one matches ``(pred_index, true_index)``: same label and IoU >= threshold.

    Greedy by decreasing IoU. For merged intervals of one video and a threshold
    >= 0.5 every interval has at most one candidate partner, so greedy is optimal.
    """
    candidates = []
    for i, p in enumerate(predicted):
        for j, g in enumerate(truth):
            if p.label == g.label:
                iou = temporal_iou(p, g)
                if iou >= iou_threshold:
                    candidates.append((-iou, i, j))
    candidates.sort()
    used_pred, used_true, matches = set(), set(), []
    for _, i, j in candidates:
        if i not in used_pred and j not in used_true:
            used_pred.add(i)
            used_true.add(j)
            matches.append((i, j))
    return matches


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    # Nothing predicted and nothing to find is a perfect score; otherwise an empty denominator scores 0.
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def interval_scores(predicted: np.ndarray, truth: np.ndarray, background_index: int,
                    iou_threshold: float = 0.5) -> dict[str, float]:
    """Event-interval precision, recall and F1 over videos ``[N, T]`` of predicted and true labels."""
    predicted, truth = np.atleast_2d(predicted), np.atleast_2d(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"shape mismatch: predicted {predicted.shape} vs truth {truth.shape}")
    tp = n_pred = n_true = 0
    for p_row, t_row in zip(predicted, truth):
        p_int = merge_intervals(p_row, None, background_index)
        t_int = merge_intervals(t_row, None, background_index)
        tp += len(match_intervals(p_int, t_int, iou_threshold))
        n_pred += len(p_int)
        n_true += len(t_int)
    both_empty = n_pred == 0 and n_true == 0
    precision = _ratio(tp, n_pred, both_empty)
    recall = _ratio(tp, n_true, both_empty)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "true_positives": tp, "predicted_intervals": n_pred, "true_intervals": n_true}
