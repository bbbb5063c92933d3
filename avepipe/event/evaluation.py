"""Evaluate a checkpoint on a split: the paper's segment accuracy and the numbers users need beside it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from avepipe.data.annotations import load_annotations
from avepipe.data.cache import CacheSet
from avepipe.data.dataset import FeatureDataset
from avepipe.data.splits import official_splits
from avepipe.data.vggsound import VGGSoundFiles
from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.event import baselines, metrics
from avepipe.event.training import predict_dataset
from avepipe.extract.provenance import require_same_extractor
from avepipe.models.checkpoint import check_task, load_checkpoint, read_checkpoint_info
from avepipe.reports import write_metrics_json


@dataclass
class EvaluationReport:
    """All figures of one evaluation; ``to_json`` is the ``--json`` output."""

    split: str
    videos: int
    segments: int
    class_names: list[str]
    segment_accuracy: float
    per_class_accuracy: list[float]       # NaN where the class does not occur in the split
    class_support: list[int]              # true segments per class
    confusion: np.ndarray                 # [K,K] rows = truth
    intervals: dict[str, float]
    baselines: dict[str, dict] = field(default_factory=dict)   # name -> {"segment_accuracy", ...}

    def to_json(self) -> dict:
        return {
            "split": self.split, "videos": self.videos, "segments": self.segments,
            "segment_accuracy": self.segment_accuracy,
            "per_class_accuracy": {name: (None if math.isnan(acc) else acc)
                                   for name, acc in zip(self.class_names, self.per_class_accuracy)},
            "class_support": dict(zip(self.class_names, self.class_support)),
            "intervals": self.intervals,
            "confusion_matrix": {"classes": self.class_names, "rows_are": "truth",
                                 "counts": self.confusion.tolist()},
            "baselines": self.baselines,
        }

    def table(self) -> str:
        """The human-readable summary printed by ``avepipe evaluate``."""
        iv = self.intervals
        width = max(len(n) for n in self.class_names)
        lines = [f"split {self.split}: {self.videos} videos, {self.segments} segments",
                 f"segment accuracy (paper metric, {len(self.class_names)}-way): {100 * self.segment_accuracy:.2f}%",
                 f"event intervals (label match, IoU >= 0.5): precision {100 * iv['precision']:.2f}%  "
                 f"recall {100 * iv['recall']:.2f}%  F1 {100 * iv['f1']:.2f}%  "
                 f"({iv['true_positives']} matched of {iv['predicted_intervals']} predicted, "
                 f"{iv['true_intervals']} true)",
                 *(f"  beside it, {baseline_line(name, b)}" for name, b in self.baselines.items()),
                 "", f"{'class':<{width}}  {'segments':>8}  {'accuracy':>8}"]
        for name, support, acc in zip(self.class_names, self.class_support, self.per_class_accuracy):
            shown = "-" if math.isnan(acc) else f"{100 * acc:7.2f}%"
            lines.append(f"{name:<{width}}  {support:>8}  {shown:>8}")
        from avepipe.event.baselines import below_baseline_warning

        warning = below_baseline_warning(self.segment_accuracy, self.baselines)
        return "\n".join(lines + ([warning] if warning else []))


def baseline_line(name: str, baseline: dict) -> str:
    """One line of the evaluation table for a baseline fitted on the training split."""
    what = {"majority_class": f"always '{baseline.get('class')}' (majority class)",
            "linear_probe": "linear probe on segment-mean pool5 + VGGish"}[name]
    return (f"{what}: {100 * baseline['segment_accuracy']:.2f}% "
            f"(fitted on {baseline['train_videos']} training videos)")


def build_report(predicted: np.ndarray, truth: np.ndarray, class_names: Sequence[str], split: str) -> EvaluationReport:
    """Figures from predicted and true labels ``[N, T]`` (background = last class)."""
    k = len(class_names)
    confusion = metrics.confusion_matrix(predicted, truth, k)
    return EvaluationReport(
        split=split, videos=int(truth.shape[0]), segments=int(truth.size), class_names=list(class_names),
        segment_accuracy=metrics.segment_accuracy(predicted, truth),
        per_class_accuracy=metrics.per_class_accuracy(predicted, truth, k).tolist(),
        class_support=confusion.sum(axis=1).tolist(), confusion=confusion,
        intervals=metrics.interval_scores(predicted, truth, background_index=k - 1))


def plot_confusion(path: Path, report: EvaluationReport) -> None:
    """Row-normalised confusion matrix (truth rows), so rare classes are as visible as common ones.

    Every class keeps its named row and column: up to 40 classes at 0.35 in per class, more (VGGSound-AVEL's
    142) at 0.17 in with 5 pt names, which stays legible when the PNG is viewed at full size.
    """
    counts = report.confusion.astype(np.float64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(report.class_names)
    cell, font = (0.35, 7) if k <= 40 else (0.17, 5)
    size = max(6.0, cell * k + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), report.class_names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), report.class_names, fontsize=font)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"{report.split}: segment accuracy {100 * report.segment_accuracy:.1f}%")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=100 if k <= 40 else 150)


def write_evaluation(out_dir: Path, report: EvaluationReport) -> None:
    """``metrics.json`` and ``confusion.png`` of ``report`` in ``out_dir`` (created if needed)."""
    write_metrics_json(out_dir, report)
    plot_confusion(out_dir / "confusion.png", report)


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``avepipe evaluate`` was asked: the checkpoint, its caches and labels, and which split to score.

    Split files are looked up in ``splits_dir``, beside the annotations, then in the run
    directory's ``splits/`` that ``avepipe train`` wrote (its random split). ``linear_probe``
    also fits a linear classifier on the training split's features (avepipe/event/baselines.py).
    """

    checkpoint: Path
    caches: tuple[Path, ...]
    annotations: Path | VGGSoundFiles
    split: str = "test"
    splits_dir: Path | None = None
    device: str | None = None
    batch_size: int = 64
    workers: int = 0
    limit: int | None = None
    linear_probe: bool = False


def evaluate_checkpoint(options: EvaluateOptions) -> EvaluationReport:
    """Load the checkpoint, check the caches' extractor against it, predict the split and score it, beside the
    majority class of the training split (and the linear probe)."""
    checkpoint = options.checkpoint
    info = read_checkpoint_info(checkpoint)
    check_task(info, "event", checkpoint)
    cache_set = CacheSet(options.caches)
    require_same_extractor(info.extractor, cache_set.config, str(options.caches[0]), f"the checkpoint {checkpoint}",
                           ("checkpoint", "cache"), "evaluate on features of the checkpoint's extractor")
    annotations = load_annotations(options.annotations, classes=info.class_names)
    splits, ids = _split_ids(options, annotations)
    dataset = FeatureDataset(cache_set.caches, annotations, ids)      # the caches opened above, not again
    device = select_device(options.device)
    net, _ = load_checkpoint(checkpoint, device=device)
    predicted, _, truth = predict_dataset(net, dataset, options.batch_size, device, options.workers,
                                          desc=f"evaluating {options.split}")
    report = build_report(predicted, truth, info.class_names, options.split)
    train_ids = [k for k in splits["train"] if annotations.source_id(k) in cache_set]
    if train_ids:
        report.baselines = training_split_baselines(FeatureDataset(cache_set.caches, annotations, train_ids), dataset,
                                                    info.class_names, options.linear_probe)
    return report


def _split_ids(options: EvaluateOptions, annotations) -> tuple[dict[str, list[str]], list[str]]:
    """All splits, and the video keys of the one to score (its first ``limit``)."""
    found = official_splits(annotations, options.annotations, options.splits_dir,
                            Path(options.checkpoint).parent / "splits")
    if found is None:
        raise UserError(f"no split files for {options.annotations}: pass --splits DIR (the run's splits/ directory)")
    splits, where = found
    if options.split not in splits:
        raise UserError(f"unknown split {options.split!r} (choose from {', '.join(splits)})")
    ids = splits[options.split][:options.limit] if options.limit else splits[options.split]
    if not ids:
        raise UserError(f"{where}: the {options.split} split is empty")
    return splits, ids


def training_split_baselines(train_set, dataset, class_names: Sequence[str], linear_probe: bool) -> dict[str, dict]:
    """Majority class (and the linear probe) fitted on ``train_set``, scored on ``dataset``."""
    truth = dataset.segment_labels
    majority = baselines.majority_class(train_set.segment_labels)
    videos = len(train_set)
    found = {"majority_class": {"segment_accuracy": float(np.mean(truth == majority)),
                                "class": class_names[majority], "train_videos": videos}}
    if linear_probe:
        probe = baselines.fit_linear_probe(*baselines.segment_features(train_set), len(class_names))
        found["linear_probe"] = {"segment_accuracy": probe.accuracy(*baselines.segment_features(dataset)),
                                 "train_videos": videos}
    return found
