"""Event-task baselines a model must beat to mean anything: the majority class and a linear probe.

On small data a network can overfit and still look fine beside nothing. Two references make
that visible: always answering the training split's most common segment label (on AVE-like
data: background), and a multinomial logistic regression on the same features (per segment:
the 7x7 pool5 map averaged over positions, concatenated with the VGGish embedding,
standardised with the training split's mean and deviation). Both are fitted on the training
split only. The probe is a convex problem solved by full-batch L-BFGS in torch, so it needs
no extra dependency and gives the same answer on every run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

FEW_STEPS = 200          # below this many optimiser steps in a run, ``train`` says so at the start
NEAR_MAJORITY = 0.02     # best validation accuracy within this of the majority class: ``train`` says so


def majority_class(labels: np.ndarray) -> int:
    """The most frequent label (the lowest one on ties)."""
    values, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    return int(values[np.argmax(counts)])


def majority_accuracy(train_labels: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on ``labels`` of always answering the majority class of ``train_labels``."""
    return float(np.mean(np.asarray(labels) == majority_class(train_labels)))


def segment_features(dataset: Dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: position-mean pool5 ``[512]`` + VGGish ``[128]``, and the label. ``[N*T, 640]``, ``[N*T]``."""
    features, labels = [], []
    for start in range(0, len(dataset), batch_size):
        batch = dataset.__getitems__(list(range(start, min(start + batch_size, len(dataset)))))
        pooled = batch["visual"].mean(dim=(2, 3))
        features.append(torch.cat([pooled, batch["audio"]], dim=-1).flatten(0, 1).numpy())
        labels.append(batch["segment_labels"].flatten().numpy())
    return np.concatenate(features), np.concatenate(labels)


@dataclass
class LinearProbe:
    """Standardisation and a linear softmax classifier fitted on one split."""

    mean: np.ndarray
    scale: np.ndarray
    weight: torch.Tensor      # [features, classes]
    bias: torch.Tensor        # [classes]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class logits ``[N, classes]``."""
        x = torch.from_numpy(((features - self.mean) / self.scale).astype(np.float32))
        return (x @ self.weight + self.bias).numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int,
                     weight_decay: float = 1e-3, max_iter: int = 500) -> LinearProbe:
    """Multinomial logistic regression with an L2 penalty (``weight_decay`` x squared weights / 2).

    Features are standardised first (constant columns keep scale 1), so one penalty suits all.
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-6,
                                  line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + weight_decay / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return LinearProbe(mean, scale, weight.detach(), bias.detach())


def optimiser_steps(train_videos: int, batch_size: int, epochs: int) -> int:
    """Optimiser steps of a run: one per (possibly partial) batch per epoch."""
    return math.ceil(train_videos / batch_size) * epochs


def few_steps_warning(train_videos: int, batch_size: int, epochs: int) -> str | None:
    """What ``train`` prints at the start when the run makes fewer than ``FEW_STEPS`` optimiser steps."""
    steps = optimiser_steps(train_videos, batch_size, epochs)
    if steps >= FEW_STEPS:
        return None
    return (f"warning: this run makes only {steps} optimiser steps ({train_videos} training videos, batch "
            f"{batch_size}, {epochs} epochs); a network rarely learns in fewer than {FEW_STEPS}. "
            f"Try a smaller --batch-size (e.g. {max(1, train_videos // 8)}) or more --epochs.")


def near_majority_warning(best_val_accuracy: float, majority_val_accuracy: float) -> str | None:
    """What ``train`` prints at the end when the model is no better than always answering the majority class."""
    if best_val_accuracy - majority_val_accuracy > NEAR_MAJORITY + 1e-9:    # 0.68 - 0.66 is within
        return None
    return (f"warning: the best validation accuracy {100 * best_val_accuracy:.1f}% is not more than "
            f"{100 * NEAR_MAJORITY:.0f} points above always answering the training split's most common class "
            f"({100 * majority_val_accuracy:.1f}%): the model has learnt little beyond that. Try more optimiser "
            f"steps (smaller --batch-size, more --epochs), more training videos, or compare with "
            f"`avepipe evaluate --linear-probe` to see whether the features carry the answer at all.")
