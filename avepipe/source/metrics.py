"""Sound-source localisation metrics: cIoU, AUC and peak-in-box, as in LVS / EZ-VSL / FNAC.

The standard protocol (Chen et al. "Localizing Visual Sounds the Hard Way", reused verbatim by
EZ-VSL and FNAC): upsample the map to the evaluation size, min-max normalise it, binarise it at
a threshold, and take IoU = |pred & box| / (|box| + |pred outside box|) per sample. cIoU is the
fraction of samples with IoU >= 0.5; AUC is the area under the success rate over the IoU
thresholds 0, 0.05, ..., 1 (trapezoids, as sklearn.metrics.auc in their code).

Threshold: their code keeps the top half of the pixels (``"median"``). That caps the IoU at
box_area / (frame_area / 2), so boxes smaller than a quarter of the frame can never count;
``threshold=0.5`` on the normalised map (our default) scores small objects fairly.
Boxes are ``(x0, y0, x1, y1)`` in pixels of the original frame; the features were computed on
the whole frame resized to 224x224, so the 7x7 grid spans the whole frame.
"""
from __future__ import annotations

import numpy as np

from avepipe.grid_maps import upsample_map

Box = tuple[float, float, float, float]
EVAL_SIZE = (224, 224)  # (width, height) at which IoU is computed, as in the published protocol
SUCCESS_IOU = 0.5
AUC_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def normalise_map(heatmap: np.ndarray) -> np.ndarray:
    """Min-max scaling to [0, 1]; a flat map becomes all zeros."""
    low, high = float(heatmap.min()), float(heatmap.max())
    if high - low == 0.0:
        return np.zeros_like(heatmap, dtype=np.float32)
    return ((heatmap - low) / (high - low)).astype(np.float32)


def binarise(normalised: np.ndarray, threshold: float | str = SUCCESS_IOU) -> np.ndarray:
    """Pixels counted as "sounding": ``>= threshold``, or the top half for ``"median"``."""
    if threshold == "median":
        flat = np.sort(normalised.ravel())
        threshold = flat[flat.size // 2]
    elif isinstance(threshold, str):
        raise ValueError(f"threshold must be a number or 'median', got {threshold!r}")
    return normalised >= threshold


def box_mask(box: Box, frame_size: tuple[int, int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean ``[height, width]`` mask of the pixels whose centres lie in ``box``.

    ``box`` is in pixels of a ``frame_size = (width, height)`` frame; ``size`` (default the
    frame size) is the resolution of the mask, the box being scaled to it.
    """
    width, height = size or frame_size
    sx, sy = width / frame_size[0], height / frame_size[1]
    x0, y0, x1, y1 = box
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    inside_x = (xs >= x0 * sx) & (xs < x1 * sx)
    inside_y = (ys >= y0 * sy) & (ys < y1 * sy)
    return inside_y[:, None] & inside_x[None, :]


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU as the published code computes it: |pred & gt| / (|gt| + |pred & not gt|)."""
    intersection = np.logical_and(predicted, truth).sum()
    union = truth.sum() + np.logical_and(predicted, ~truth).sum()
    return float(intersection / union) if union else 0.0


def map_iou(grid_map: np.ndarray, box: Box, frame_size: tuple[int, int],
            threshold: float | str = SUCCESS_IOU, size: tuple[int, int] = EVAL_SIZE) -> float:
    """IoU of one 7x7 map (upsampled, normalised, binarised) with its box, at ``size``."""
    predicted = binarise(normalise_map(upsample_map(grid_map, size)), threshold)
    return mask_iou(predicted, box_mask(box, frame_size, size))


def ciou(ious: np.ndarray) -> float:
    """Fraction of samples whose IoU is at least 0.5 (what the papers report as cIoU)."""
    return float(np.mean(np.asarray(ious) >= SUCCESS_IOU))


def success_curve(ious: np.ndarray) -> np.ndarray:
    """Success rate at each IoU threshold 0, 0.05, ..., 1."""
    ious = np.asarray(ious)
    return np.array([np.mean(ious >= t) for t in AUC_THRESHOLDS])


def auc(ious: np.ndarray) -> float:
    """Area under the success curve over IoU thresholds 0..1 (trapezoidal rule)."""
    curve = success_curve(ious)
    return float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(AUC_THRESHOLDS)))


def peak_position(grid_map: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float]:
    """Peak ``(x, y)`` in pixels of the original ``frame_size = (width, height)`` frame.

    A bilinear surface peaks at a grid node, so the peak of the upsampled map is the centre
    of the strongest cell (first one on ties).
    """
    rows, cols = grid_map.shape
    row, col = np.unravel_index(int(np.argmax(grid_map)), grid_map.shape)
    return ((col + 0.5) * frame_size[0] / cols, (row + 0.5) * frame_size[1] / rows)


def point_in_box(point: tuple[float, float], box: Box) -> bool:
    x, y = point
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def evaluate_maps(maps: np.ndarray, boxes: list[Box], frame_sizes: list[tuple[int, int]],
                  threshold: float | str = SUCCESS_IOU) -> dict:
    """cIoU, AUC, mean IoU and peak-in-box rate of ``maps [N,7,7]`` against one box each."""
    if len(maps) == 0:
        raise ValueError("no samples with boxes to evaluate")
    ious = np.array([map_iou(m, b, s, threshold) for m, b, s in zip(maps, boxes, frame_sizes)])
    peaks = [point_in_box(peak_position(m, s), b) for m, b, s in zip(maps, boxes, frame_sizes)]
    return {
        "ciou": ciou(ious),
        "auc": auc(ious),
        "mean_iou": float(ious.mean()),
        "peak_in_box": float(np.mean(peaks)),
        "samples": int(len(ious)),
        "threshold": threshold,
    }
