"""The interface every event network implements, so training, evaluation, localisation and
``compare`` use any registered model without asking what it is.

A network takes audio ``[B,T,128]`` and visual ``[B,T,7,7,512]`` features and returns a
``ModelOutput``; it owns its loss (``compute_loss``), its decision rule (``predict_from_scores``)
and what ``localize --explain`` shows of it (``explain``).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from avepipe.models.outputs import ModelOutput


class EventNetwork(nn.Module):
    """Base class: ``model_name``/``setting`` name the registry entry; ``options()`` are the build
    options that rebuild this network (``registry.build(**net.config)``)."""

    model_name = ""
    setting = "fully"

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.background = num_classes

    def options(self) -> dict:
        return {}

    @property
    def config(self) -> dict:
        return {"model": self.model_name, "setting": self.setting, "num_classes": self.num_classes,
                **self.options()}

    def compute_loss(self, out: ModelOutput, segment_labels: Tensor, video_labels: Tensor) -> dict[str, Tensor]:
        """The training loss under ``"loss"`` and its named terms (for the logs).

        ``segment_labels`` [B,T] long (background = ``num_classes``); ``video_labels`` [B,C+1]
        multi-hot (the weakly supervised label). A weakly supervised network must not read
        ``segment_labels``.
        """
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Called with the 1-based epoch before it trains (for terms switched on later in training)."""

    def segment_scores(self, out: ModelOutput) -> Tensor:
        """Per-segment scores [B,T,K] that localize may average over overlapping windows (default: logits)."""
        return out.logits

    def predict_from_scores(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Per-segment class [B,T] and its confidence (default: argmax of the softmax)."""
        confidence, labels = F.softmax(scores, dim=-1).max(dim=-1)
        return labels, confidence

    def class_probabilities(self, scores: Tensor) -> Tensor:
        """Per-class probabilities [..., C+1] from (averaged) ``segment_scores``."""
        return F.softmax(scores, dim=-1)

    def predict(self, out: ModelOutput) -> tuple[Tensor, Tensor]:
        return self.predict_from_scores(self.segment_scores(out))

    def explain(self, out: ModelOutput) -> dict[str, Tensor]:
        """What ``localize --explain`` shows: name -> spatial maps [B,T,7,7] or segment matrices [B,T,T]."""
        return {name: value for name, value in (("attention", out.attention), ("gamma_va", out.gamma_va),
                                                ("gamma_av", out.gamma_av)) if value is not None}

    def set_dropout(self, p: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = p


def xavier(*layers: nn.Linear) -> None:
    """Xavier-uniform weights and zero biases (CPSP corrected's heads; the PSP authors' Xavier layers have none)."""
    for layer in layers:
        nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


__all__ = ["EventNetwork", "xavier"]
