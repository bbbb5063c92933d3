"""Self-supervised training of the sound-source localiser on a feature cache (no labels).

A sample is one second of one video: its VGGish embedding and its 7x7 pool5 map. The other
seconds of the batch are the negatives. Videos are read a chunk at a time, so a cache larger
than RAM trains; pairs of a chunk are shuffled across videos.
Defaults follow the authors' train.py: Adam, lr 1e-4, weight decay 1e-4, batch 128, 20
epochs, the first 3 epochs on the contrastive term alone.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.extract.features import AUDIO_SHAPE, VISUAL_SHAPE
from avepipe.models.checkpoint import save_checkpoint
from avepipe.models.fnac import SoundSourceLocalizer
from avepipe.models.fnac_losses import FNS_WEIGHT

# Named schedules of ``avepipe source train --schedule``: the authors' train.py, and the
# one measured to learn small objects from a few hundred short videos (docs/baselines.md: there
# ~30 optimiser steps make an epoch, where the authors' batch of 128 over 144k pairs makes
# ~1,100; their 0.9 input dropout and max pooling left FNAC at chance on one-cell objects).
# ``batch_scaled_weights``: FNS and TNE are means over the B x B entries of a batch, so their size
# goes as 1/B; the authors' weight 100 was set at their batch of 128, and at 32 it is in effect four
# times stronger (measured: FNAC then collapses to uniform similarities after the contrastive-only
# epoch). Scaled, the weights are 100 x B / 128: the authors' balance at any batch size.
SCHEDULES = {
    "authors": dict(epochs=20, batch_size=128, lr=1e-4, warmup_epochs=3, model_options={},
                    batch_scaled_weights=False),
    "small-data": dict(epochs=30, batch_size=32, lr=1e-3, warmup_epochs=1,
                       model_options={"dropout_visual": 0.0, "pooling": "softmax"}, batch_scaled_weights=True),
}
DEFAULT_SCHEDULE = "small-data"
AUTHORS_BATCH_SIZE = SCHEDULES["authors"]["batch_size"]
LOSS_KEYS = ("loss", "contrastive", "fns_audio", "fns_visual", "tne")
VAL_KEYS = ("peak_in_box", "auc", "ciou")
VIDEOS_PER_CHUNK = 256


def schedule_options(name: str, **overrides) -> dict:
    """Keyword arguments of ``train_source_localizer`` for schedule ``name`` with the ``overrides`` that are
    not None (``epochs``, ``batch_size``, ``lr``, ...), the FNS/TNE weights scaled to the batch where the
    schedule says so."""
    options = {**SCHEDULES[name], **{k: v for k, v in overrides.items() if v is not None}}
    if options.pop("batch_scaled_weights"):
        weight = FNS_WEIGHT * options["batch_size"] / AUTHORS_BATCH_SIZE
        options["model_options"] = {**options["model_options"], "fns_weight": weight, "tne_weight": weight}
    return options


def checked_ids(cache, ids: Sequence[str] | None = None) -> list[str]:
    """The requested videos (all by default); unknown ids are a user error."""
    known = set(cache.ids)
    ids = list(cache.ids if ids is None else ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise UserError(f"cache has no video {missing[0]!r} ({len(missing)} requested ids missing)")
    return ids


def iterate_pairs(cache, ids: Sequence[str], batch_size: int, rng: np.random.Generator,
                  videos_per_chunk: int = VIDEOS_PER_CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches ``(audio [B,128], visual [B,7,7,512])`` of (video, second) pairs.

    Videos without audio are skipped (their VGGish input is silence, not a sound source).

    Full batches only (a contrastive batch needs negatives), except when the whole epoch is
    smaller than one batch; leftovers of a chunk carry over to the next.
    """
    order = rng.permutation(len(ids))
    audio_left, visual_left = np.zeros((0, *AUDIO_SHAPE), np.float32), np.zeros((0, *VISUAL_SHAPE), np.float32)
    yielded = False
    for start in range(0, len(order), videos_per_chunk):
        chunk = [f for f in (cache.read(ids[i]) for i in order[start:start + videos_per_chunk]) if f.has_audio]
        lengths = [min(len(f.audio), len(f.visual)) for f in chunk]
        audio = np.concatenate([audio_left] + [f.audio[:n] for f, n in zip(chunk, lengths)]).astype(np.float32)
        visual = np.concatenate([visual_left] + [f.visual[:n] for f, n in zip(chunk, lengths)]).astype(np.float32)
        shuffle = rng.permutation(len(audio))
        audio, visual = audio[shuffle], visual[shuffle]
        full = len(audio) // batch_size * batch_size
        for b in range(0, full, batch_size):
            yielded = True
            yield torch.from_numpy(audio[b:b + batch_size]), torch.from_numpy(visual[b:b + batch_size])
        audio_left, visual_left = audio[full:], visual[full:]
    if not yielded and len(audio_left) >= 2:
        yield torch.from_numpy(audio_left), torch.from_numpy(visual_left)


def train_source_localizer(
    cache,
    ids: Sequence[str] | None,
    out_dir: str | Path,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | None = None,
    use_fns: bool = True,
    use_tne: bool = True,
    warmup_epochs: int = 3,
    weight_decay: float = 1e-4,
    model_options: dict | None = None,
    progress: bool = True,
    validate: Callable[[SoundSourceLocalizer], dict] | None = None,
    extra: dict | None = None,
) -> Path:
    """Train on ``cache`` (a ``data.cache.FeatureCache``); returns the checkpoint directory.

    Writes ``out_dir/checkpoint`` (safetensors + config.json), ``out_dir/metrics.csv`` (per
    epoch mean of every loss term) and ``out_dir/loss.png``. With ``validate`` (model -> metrics
    on held-out videos), the checkpoint is the epoch with the best validation peak-in-box
    (then AUC); without it, the last epoch. ``extra`` is stored in the checkpoint as well.
    """
    device = select_device(device)
    ids = checked_ids(cache, ids)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SoundSourceLocalizer(use_fns=use_fns, use_tne=use_tne, **(model_options or {})).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    extra = {"train_videos": len(ids), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
             "warmup_epochs": warmup_epochs, "weight_decay": weight_decay, **(extra or {})}
    best = None
    for epoch in tqdm(range(epochs), desc="source epochs", unit="epoch", disable=not progress):
        model.train()
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        batches = 0
        for audio, visual in iterate_pairs(cache, ids, batch_size, rng):
            parts = model.fnac_loss(audio.to(device), visual.to(device), contrastive_only=epoch < warmup_epochs)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            for key in LOSS_KEYS:
                sums[key] += float(parts[key].detach())
            batches += 1
        if batches == 0:
            raise UserError("no (video, second) pairs with audio to train the sound-source localiser on")
        history.append({"epoch": epoch + 1, **{k: v / max(batches, 1) for k, v in sums.items()}})
        if validate is not None:
            scores = validate(model.eval())
            history[-1].update({f"val_{k}": scores[k] for k in VAL_KEYS})
            if best is None or (scores["peak_in_box"], scores["auc"]) > best:
                best = (scores["peak_in_box"], scores["auc"])
                checkpoint = save_checkpoint(out_dir / "checkpoint", model, [], cache.config,
                                             {**extra, "selected_epoch": epoch + 1}, task="source")
    if validate is None:
        checkpoint = save_checkpoint(out_dir / "checkpoint", model, [], cache.config,
                                     {**extra, "selected_epoch": epochs}, task="source")
    write_metrics_csv(history, out_dir / "metrics.csv")
    plot_losses(history, out_dir / "loss.png")
    return checkpoint


def write_metrics_csv(history: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
        writer.writeheader()
        writer.writerows(history)


def plot_losses(history: list[dict], path: Path) -> None:
    """Total and per-term loss curves (log scale: the terms differ by orders of magnitude)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    epochs = [row["epoch"] for row in history]
    for key in LOSS_KEYS:
        values = [row[key] for row in history]
        if any(v > 0 for v in values):
            axes.plot(epochs, values, label=key)
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean loss per batch")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
