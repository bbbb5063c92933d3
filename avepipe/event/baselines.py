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

from avepipe.models.registry import SMALL_DATA

FEW_STEPS = 200          # below this many optimiser steps in a run, ``train`` says so at the start
NEAR_MAJORITY = 0.02     # best validation accuracy within this of the majority class: ``train`` says so
SMALL_TRAINING_SPLIT = 300               # fewer training videos than this: ``train`` mentions the small-data recipe
NOT_LEARNING = 0.03                      # training accuracy within this of its majority class after a third of the run
PROBE_MARGIN = 0.05                      # evaluate warns when the model is further below the linear probe
SMALL_VALIDATION = (20, 200)             # fewer validation videos or segments: too few to pick an epoch on


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


def small_data_note(train_videos: int, recipe: str, measured: str | None) -> str | None:
    """What ``train`` prints at the start of a run on few videos that does not use the small-data recipe.

    ``measured`` is what that recipe was measured to do; None when the model has no such recipe.
    """
    if train_videos >= SMALL_TRAINING_SPLIT or recipe == SMALL_DATA or measured is None:
        return None
    return (f"note: {train_videos} training videos is a small training split; the '{SMALL_DATA}' recipe is made "
            f"for it ({measured}).")


def not_learning_warning(epoch: int, epochs: int, train_accuracy: float, majority_train_accuracy: float) -> str | None:
    """Said once, after the first third of the epochs, when training accuracy is still about the majority class's.

    A network that does not beat "always the most common label" on its own training data has not
    started to learn; more epochs of the same rarely change that.
    """
    if epoch != max(1, math.ceil(epochs / 3)) or train_accuracy - majority_train_accuracy > NOT_LEARNING + 1e-9:
        return None
    return (f"warning: after {epoch} of {epochs} epochs the training accuracy {100 * train_accuracy:.1f}% is within "
            f"{100 * NOT_LEARNING:.0f} points of always answering the training split's most common class "
            f"({100 * majority_train_accuracy:.1f}%): the model is not learning.")


def small_validation_warning(val_videos: int, val_segments: int) -> str | None:
    """What ``train`` prints when the validation split is too small for its accuracy to pick the best epoch."""
    videos, segments = SMALL_VALIDATION
    if val_videos >= videos and val_segments >= segments:
        return None
    return (f"warning: the validation split has {val_videos} videos ({val_segments} segments), fewer than {videos} "
            f"videos or {segments} segments: its accuracy moves by chance from epoch to epoch, so the 'best' "
            f"checkpoint is picked on noise. Move videos into the validation split, or judge the run by its "
            f"'last' checkpoint.")


def below_baseline_warning(accuracy: float, found: dict[str, dict]) -> str | None:
    """The last line of an evaluation whose model scores below the majority class, or more than
    ``PROBE_MARGIN`` below the linear probe (the small-data recipe's bar, docs/baselines.md)."""
    beaten = []
    for name, baseline in found.items():
        margin = PROBE_MARGIN if name == "linear_probe" else 0.0
        if accuracy < baseline["segment_accuracy"] - margin - 1e-9:
            how = f"more than {100 * margin:.0f} points below" if margin else "below"
            beaten.append(f"{how} the {name.replace('_', ' ')} ({100 * baseline['segment_accuracy']:.2f}%)")
    if not beaten:
        return None
    return (f"warning: the model's segment accuracy {100 * accuracy:.2f}% is {' and '.join(beaten)}: "
            f"it has not learnt what the features carry.")
