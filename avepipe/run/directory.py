"""One run directory for every task: ``best/``, ``last/`` (+ training state), ``metrics.csv``, ``curves.png``.

``last`` is written beside the old one and swapped in, so one complete ``last`` always exists
and a run killed at any moment resumes from its latest finished epoch.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from avepipe.errors import UserError
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models.checkpoint import WEIGHTS_FILE, save_checkpoint
from avepipe.run.logs import plot_curves, write_metrics
from avepipe import rng_state
from avepipe.run.state import load_optimizer_state, optimizer_state

BEST, LAST = "best", "last"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"


@dataclass(frozen=True)
class CheckpointLabels:
    """What every checkpoint of a run records beside the weights: class names, extractor, task."""

    class_names: list[str]
    extractor: ExtractorConfig
    task: str = "event"


class RunDirectory:
    """The files of one run; every write of a checkpoint, the training state or the logs goes through here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def holds_run(self) -> bool:
        return (self.path / LAST).exists()

    def resume_dir(self) -> Path:
        """The complete ``last`` checkpoint of the run (``last.old`` survives an interrupted swap)."""
        for name in (LAST, LAST + ".old"):
            if (self.path / name / STATE_JSON).is_file():
                return self.path / name
        raise UserError(f"{self.path}: nothing to resume (no last/{STATE_JSON}); start without --resume")

    def read_state(self) -> dict:
        return json.loads((self.resume_dir() / STATE_JSON).read_text(encoding="utf-8"))

    def save_best(self, net: nn.Module, labels: CheckpointLabels, extra: dict) -> Path:
        return save_checkpoint(self.path / BEST, net, labels.class_names, labels.extractor, extra=extra,
                               task=labels.task)

    def save_last(self, net: nn.Module, labels: CheckpointLabels, extra: dict, optimizer: torch.optim.Optimizer,
                  state: dict, device: torch.device) -> None:
        """The checkpoint, the optimiser and RNG state (``device``'s own CUDA generator) and ``state`` (JSON) as
        ``last``, swapped in atomically."""
        last, tmp, old = (self.path / n for n in (LAST, LAST + ".tmp", LAST + ".old"))
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(tmp, net, labels.class_names, labels.extractor, extra=extra, task=labels.task)
        opt_tensors, opt_info = optimizer_state(optimizer)
        rng_tensors, rng_info = rng_state.capture(device)
        save_file({**opt_tensors, **rng_tensors}, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps({**state, "optimizer": opt_info, "rng": rng_info}, indent=1) + "\n",
                                      encoding="utf-8")
        if last.exists():
            shutil.rmtree(old, ignore_errors=True)
            last.rename(old)
        tmp.rename(last)
        shutil.rmtree(old, ignore_errors=True)

    def load_last(self, net: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> dict:
        """Restore weights, optimiser and RNG state from ``last``; returns the stored JSON state."""
        last = self.resume_dir()
        info = json.loads((last / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(last / STATE_TENSORS))
        net.load_state_dict(load_file(str(last / WEIGHTS_FILE)))
        net.to(device)
        load_optimizer_state(optimizer, {k: v.to(device) for k, v in tensors.items() if k.startswith("optimizer.")},
                             info["optimizer"])
        rng_state.restore(tensors, info["rng"], device)
        return info

    def write_logs(self, history: list[dict], scores: tuple[str, ...], score_label: str) -> None:
        write_metrics(self.path / METRICS_FILE, history)
        plot_curves(self.path / CURVES_FILE, history, scores, score_label)
