"""The epoch loop both tasks share: train an epoch, validate, keep the best, save ``last``, log; resume exactly.

Resume is exact because everything that steers training is restored: weights, optimiser
moments, the torch/NumPy/Python RNG states, the epoch, and whatever the task's trainer adds
to its state (its config, its own shuffling generator). A task's trainer subclasses
``EpochRun`` and supplies one epoch of training (``train_epoch``) and of validation (``validate``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from avepipe.run.allocator import keep_freed_memory
from avepipe.run.directory import BEST, CheckpointLabels, RunDirectory


class EpochRun:
    """``fit()`` trains epochs ``epoch+1 .. epochs`` in ``run_dir``; ``resume()`` first restores ``last``.

    ``scores`` are the history columns drawn on the right of curves.png (fractions in [0, 1]).
    Only the main process (``is_main``) writes; under torchrun every rank holds the same state.
    """

    scores: tuple[str, ...] = ()
    score_label = "score"

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, run_dir: str | Path, epochs: int,
                 labels: CheckpointLabels, device: torch.device, is_main: bool = True, progress: bool = True):
        self.net, self.optimizer = net, optimizer
        self.run = RunDirectory(run_dir)
        self.run_dir = self.run.path
        self.epochs, self.labels, self.device = epochs, labels, device
        self.is_main, self.progress = is_main, progress and is_main
        self.epoch = self.best_epoch = 0
        self.best_score: tuple | None = None
        self.history: list[dict] = []
        self.on_epoch: Callable[[dict], None] | None = None    # called with each row, on the main process

    @property
    def best_dir(self) -> Path:
        """The checkpoint of the best epoch so far."""
        return self.run_dir / BEST

    # -- what each task supplies ---------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict:
        """One epoch of training; the history row (``epoch``, ``train_*`` columns, ...)."""
        raise NotImplementedError

    def validate(self, row: dict) -> tuple | None:
        """Add the validation columns to ``row``; the score that picks ``best`` (larger is better), or None
        when nothing is validated (then the latest epoch is the one kept)."""
        raise NotImplementedError

    def checkpoint_extra(self) -> dict:
        """What the task records in ``extra`` of each checkpoint."""
        return {}

    def state(self) -> dict:
        """The task's own JSON state in ``last`` (its config, its generators)."""
        return {}

    def restore(self, state: dict) -> None:
        """Take back what ``state()`` stored."""

    def summary(self, row: dict) -> str:
        return f"epoch {row['epoch']}"

    # -- the loop ------------------------------------------------------------------------
    def resume(self) -> None:
        """Restore everything from ``run_dir/last`` (or ``last.old`` if a swap was interrupted)."""
        info = self.run.load_last(self.net, self.optimizer, self.device)
        self.epoch, self.best_epoch, self.history = info["epoch"], info["best_epoch"], info["history"]
        self.best_score = tuple(info["best_score"]) if info.get("best_score") is not None else None
        self.restore(info)

    def fit(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keep_freed_memory()     # each step then reuses the memory the last one freed (avepipe/run/allocator.py)
        while self.epoch < self.epochs:
            epoch = self.epoch + 1
            started = time.perf_counter()
            row = self.train_epoch(epoch)
            score = self.validate(row)
            row["time_s"] = time.perf_counter() - started
            self.epoch = epoch
            self.history.append(row)
            improved = score is None or self.best_score is None or score > self.best_score
            if improved:
                self.best_score, self.best_epoch = score, epoch
            if not self.is_main:
                continue
            if improved:
                self.run.save_best(self.net, self.labels, self.checkpoint_extra())
            self.run.save_last(self.net, self.labels, self.checkpoint_extra(), self.optimizer, self._state(),
                               self.device)
            self.run.write_logs(self.history, self.scores, self.score_label)
            if self.on_epoch:
                self.on_epoch(row)
            if self.progress:
                tqdm.write(self.summary(row))

    def _state(self) -> dict:
        return {"epoch": self.epoch, "best_epoch": self.best_epoch,
                "best_score": list(self.best_score) if self.best_score is not None else None,
                "history": self.history, **self.state()}
