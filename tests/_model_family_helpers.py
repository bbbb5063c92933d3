"""The synthetic-stand-in fit and the event/category loss reference shared by the CMRAN and SSPSP tests (the
CLI chain train -> evaluate -> localize every model goes through is tests/_model_learning.train_evaluate_localize)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import build_model
from avepipe.event.training import Trainer, defaults_for
from avepipe.run.seeding import seed_everything
from tests._train_helpers import tensor_splits


SYNTHETIC_CLASSES = ["a", "b", "c", "d", "background"]


@dataclass
class Fit:
    accuracy: float            # validation segment accuracy after the last epoch (none picked on this set)
    majority: float            # the majority label's share of validation segments
    history: list[dict]
    net: object                # the trained network
    val_set: object


def fit_synthetic(root: Path, model: str, setting: str, train: int, val: int, epochs: int,
                  background_share: float = 0.0, segments: int = 10, **schedule) -> Fit:
    """Trains on the synthetic stand-in (40% one-modality distractors) with ``schedule`` overriding the recipe."""
    train_set, val_set = tensor_splits(train, val, background_share=background_share, distractors=0.4,
                                       segments=segments)
    majority = float(torch.bincount(val_set.segment_labels.flatten()).max() / val_set.segment_labels.numel())
    seed_everything(0)
    config = defaults_for(model, setting, epochs=epochs, seed=0, **schedule)
    net = build_model(model, setting, num_classes=len(SYNTHETIC_CLASSES) - 1)
    result = Trainer(net, config, train_set, val_set, root, SYNTHETIC_CLASSES, ExtractorConfig(), device="cpu",
                     progress=False).fit()
    return Fit(result.history[-1]["val_acc"], majority, result.history, net.eval(), val_set)


def reference_event_category_terms(out, segment_labels, background: int) -> dict:
    """Loops: mean over segments of BCE(event logit, event-or-not); mean over videos of the cross-entropy of the
    category logits against the largest class index over the video's segments, background counted as 0."""
    batch, segments = segment_labels.shape
    event, category = [], []
    for b in range(batch):
        for t in range(segments):
            y = float(segment_labels[b, t] != background)
            p = torch.sigmoid(out.event_logits[b, t])
            event.append(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))
        target = max(int(c) if c != background else 0 for c in segment_labels[b])
        category.append(torch.logsumexp(out.category_logits[b], 0) - out.category_logits[b, target])
    return {"event": sum(event) / (batch * segments), "category": sum(category) / batch}
