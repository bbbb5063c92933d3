"""PSP-family models for audio-visual event localisation; ``build_model`` is the entry point."""
from __future__ import annotations

from torch import nn

from avepipe.models.networks import (CPSP_LOSSES, TAU_FULLY, TAU_WEAKLY, CPSPNet, FullyPSPNet, WeaklyCPSPNet,
                                     WeaklyPSPNet)
from avepipe.models.outputs import ModelOutput

__all__ = ["build_model", "ModelOutput", "FullyPSPNet", "WeaklyPSPNet", "CPSPNet", "WeaklyCPSPNet", "CPSP_LOSSES",
           "TAU_FULLY", "TAU_WEAKLY"]


def build_model(model: str = "psp", setting: str = "fully", tau: float | None = None,
                num_classes: int = 28, cpsp_loss: str | None = None) -> nn.Module:
    """A fresh network; tau None = the published default (0.099 fully, 0.095 weakly; PSP and CPSP alike).

    ``cpsp_loss`` (CPSP only): ``released`` (default, the authors' code) or ``corrected``.
    ``build_model(**net.config)`` rebuilds the same architecture.
    """
    if model not in ("psp", "cpsp"):
        raise ValueError(f"unknown model {model!r} (expected 'psp' or 'cpsp')")
    if setting not in ("fully", "weakly"):
        raise ValueError(f"unknown setting {setting!r} (expected 'fully' or 'weakly')")
    if model != "cpsp" and cpsp_loss is not None:
        raise ValueError("cpsp_loss applies to model='cpsp' only")
    tau = float(tau) if tau is not None else (TAU_WEAKLY if setting == "weakly" else TAU_FULLY)
    if model == "cpsp":
        network = WeaklyCPSPNet if setting == "weakly" else CPSPNet
        return network(tau=tau, num_classes=num_classes, loss=cpsp_loss or "released")
    if setting == "weakly":
        return WeaklyPSPNet(tau=tau, num_classes=num_classes)
    return FullyPSPNet(tau=tau, num_classes=num_classes)
