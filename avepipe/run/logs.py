"""The per-epoch table and plot of a run, rewritten whole each epoch so they always match the saved state."""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure


def write_metrics(path: Path, history: list[dict]) -> None:
    """``history`` (one dict per epoch) as CSV; the columns are every key in first-seen order."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def plot_curves(path: Path, history: list[dict], scores: Sequence[str], score_label: str) -> None:
    """Training loss parts per epoch (left, log scale: the terms differ by orders of magnitude) and the
    ``scores`` columns, fractions in [0, 1] such as accuracies (right)."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_score = fig.subplots(1, 2)
    for key in history[0]:
        if key.startswith("train_") and key not in scores:
            values = [row[key] for row in history]
            if all(math.isfinite(v) and v > 0 for v in values):
                ax_loss.plot(epochs, values, marker=".", label=key[len("train_"):])
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    ax_loss.legend(fontsize=8)
    shown = [key for key in scores if key in history[0]]
    for key in shown:
        ax_score.plot(epochs, [row[key] for row in history], marker=".", label=key.replace("_", " "))
    ax_score.set(xlabel="epoch", ylabel=score_label, ylim=(0, 1), title=score_label if shown else "not validated")
    if shown:
        ax_score.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
