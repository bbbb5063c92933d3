"""A small model registered from outside avepipe, and labels for generated videos: the registry's test pieces."""
from __future__ import annotations

import csv

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avepipe.models.base import EventNetwork
from avepipe.models.outputs import ModelOutput
from avepipe.models.registry import AUTHORS, ModelFamily, ModelOption, Recipe

CLASSES = 4


class PooledLinear(EventNetwork):
    """Mean-pooled visual map and audio, concatenated, one linear layer to C+1 logits."""

    model_name = "pooled-linear"

    def __init__(self, num_classes: int, width: float = 1.0):
        super().__init__(num_classes)
        self.width = width
        self.classifier = nn.Linear(512 + 128, num_classes + 1)

    def options(self) -> dict:
        return {"width": self.width}

    def forward(self, audio, visual):
        pooled = visual.mean(dim=(2, 3))
        logits = self.classifier(torch.cat([pooled, audio], dim=-1)) * self.width
        return ModelOutput(logits=logits, extras={"pooled_norm": pooled.norm(dim=-1)[..., None].expand(-1, -1, 7)})

    def compute_loss(self, out, segment_labels, video_labels):
        ce = F.cross_entropy(out.logits.flatten(0, 1), segment_labels.flatten())
        return {"loss": ce, "ce": ce}


def _build(setting: str, num_classes: int = 28, width: float | None = None) -> PooledLinear:
    return PooledLinear(num_classes, 1.0 if width is None else width)


def _their_keys(state, setting):
    """Their layer was called ``fc``."""
    return {key.replace("fc.", "classifier.", 1): value for key, value in state.items()}


FAMILY = ModelFamily(
    name="pooled-linear", summary="a test model", build=_build, settings=("fully",),
    recipes={AUTHORS: {"fully": Recipe(epochs=6, batch_size=8, lr=1e-2, lr_milestones=(4,), lr_gamma=0.5)},
             "tiny": {"fully": Recipe(epochs=2, batch_size=4, lr=1e-3)}},
    options=(ModelOption("width", float, "logit scale"),), import_state=_their_keys)


def write_labels(path, ids, segment_labels):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "start", "end", "label"])
        for vid, labels in zip(ids, segment_labels):
            events = np.flatnonzero(labels != CLASSES)
            writer.writerow([vid, events[0], events[-1] + 1, f"class {labels[events[0]]}"] if len(events)
                            else [vid, "", "", ""])
    return path
