"""Self-supervised training of the sound-source localiser on a feature cache (no labels).

A sample is one second of one video: its VGGish embedding and its 7x7 pool5 map. The other
seconds of the batch are the negatives. Videos are read a chunk at a time, so a cache larger
than RAM trains; pairs of a chunk are shuffled across videos.
Defaults follow the authors' train.py: Adam, lr 1e-4, weight decay 1e-4, batch 128, 20
epochs, the first 3 epochs on the contrastive term alone. The run directory, model selection
and exact resume are the run machinery's (avepipe/run/), as for the event models.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from avepipe.errors import UserError
from avepipe.extract.features import AUDIO_SHAPE, VISUAL_SHAPE
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models.fnac import SoundSourceLocalizer
from avepipe.models.fnac_losses import FNS_WEIGHT
from avepipe.run.directory import CheckpointLabels, RunDirectory
from avepipe.run.loop import EpochRun

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


@dataclass(frozen=True)
class SourceTrainConfig:
    """Every hyper-parameter of a sound-source run (stored in ``last`` so a resumed run keeps them)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-4
    seed: int = 0
    warmup_epochs: int = 3            # the first epochs train the contrastive term alone
    weight_decay: float = 1e-4
    use_fns: bool = True
    use_tne: bool = True
    model_options: dict = field(default_factory=dict)


def schedule_config(name: str, **overrides) -> SourceTrainConfig:
    """Schedule ``name`` with the ``overrides`` that are not None (``epochs``, ``batch_size``, ``lr``, ``seed``,
    ...), the FNS/TNE weights scaled to the batch where the schedule says so."""
    options = {**SCHEDULES[name], **{k: v for k, v in overrides.items() if v is not None}}
    if options.pop("batch_scaled_weights"):
        weight = FNS_WEIGHT * options["batch_size"] / AUTHORS_BATCH_SIZE
        options["model_options"] = {**options["model_options"], "fns_weight": weight, "tne_weight": weight}
    return SourceTrainConfig(**options)


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


class SourceTrainer(EpochRun):
    """One sound-source run in ``run_dir``. With ``validate`` (model -> metrics on held-out videos), ``best/``
    is the epoch with the best validation peak-in-box (then AUC); without it, the latest epoch.
    ``extra`` is stored in every checkpoint as well."""

    scores = tuple(f"val_{k}" for k in VAL_KEYS)
    score_label = "validation score"

    def __init__(self, cache, ids: Sequence[str] | None, run_dir: str | Path, config: SourceTrainConfig,
                 extractor: ExtractorConfig, device: torch.device, validate: Callable[[SoundSourceLocalizer], dict]
                 | None = None, extra: dict | None = None, progress: bool = True):
        torch.manual_seed(config.seed)
        model = SoundSourceLocalizer(use_fns=config.use_fns, use_tne=config.use_tne, **config.model_options).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        super().__init__(model, optimizer, run_dir, config.epochs, CheckpointLabels([], extractor, task="source"),
                         device, progress=progress)
        self.cache, self.ids, self.config = cache, checked_ids(cache, ids), config
        self.validator, self.extra = validate, extra or {}
        self.shuffle = np.random.default_rng(config.seed)
        self.bar = None

    def train_epoch(self, epoch: int) -> dict:
        self.net.train()
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        batches = 0
        for audio, visual in iterate_pairs(self.cache, self.ids, self.config.batch_size, self.shuffle):
            parts = self.net.fnac_loss(audio.to(self.device), visual.to(self.device),
                                       contrastive_only=epoch <= self.config.warmup_epochs)
            self.optimizer.zero_grad()
            parts["loss"].backward()
            self.optimizer.step()
            for key in LOSS_KEYS:
                sums[key] += float(parts[key].detach())
            batches += 1
        if batches == 0:
            raise UserError("no (video, second) pairs with audio to train the sound-source localiser on")
        self.bar.update()
        return {"epoch": epoch, **{f"train_{k}": v / batches for k, v in sums.items()}}

    def validate(self, row: dict) -> tuple | None:
        if self.validator is None:
            return None
        scores = self.validator(self.net.eval())
        row.update({f"val_{k}": scores[k] for k in VAL_KEYS})
        return scores["peak_in_box"], scores["auc"]

    def checkpoint_extra(self) -> dict:
        settings = {k: v for k, v in asdict(self.config).items() if k not in ("use_fns", "use_tne", "model_options")}
        return {"train_videos": len(self.ids), **settings, **self.extra, "selected_epoch": self.epoch}

    def state(self) -> dict:
        return {"config": asdict(self.config), "shuffle": self.shuffle.bit_generator.state}

    def restore(self, state: dict) -> None:
        self.shuffle.bit_generator.state = state["shuffle"]

    def fit(self) -> None:
        with tqdm(total=self.epochs, initial=self.epoch, desc="source epochs", unit="epoch",
                  disable=not self.progress) as self.bar:
            super().fit()

    def summary(self, row: dict) -> str:
        shown = "".join(f" {k} {row[k]:.3f}" for k in self.scores if k in row)
        return f"epoch {row['epoch']}: loss {row['train_loss']:.4f}{shown}"


def stored_config(run_dir: str | Path) -> SourceTrainConfig:
    """The config of the sound-source run to resume in ``run_dir``."""
    return SourceTrainConfig(**RunDirectory(run_dir).read_state()["config"])


def train_source_localizer(cache, ids: Sequence[str] | None, run_dir: str | Path, config: SourceTrainConfig,
                           device: torch.device | str = "cpu", validate: Callable[[SoundSourceLocalizer], dict]
                           | None = None, extra: dict | None = None, resume: bool = False,
                           progress: bool = True) -> SourceTrainer:
    """Train (or resume) on ``cache`` (a ``data.cache`` cache) in ``run_dir``; returns the finished trainer
    (``best_epoch``, ``best_score``, ``history``; the kept checkpoint is ``run_dir/best``)."""
    trainer = SourceTrainer(cache, ids, run_dir, config, cache.config, torch.device(device), validate, extra,
                            progress)
    if resume:
        trainer.resume()
    trainer.fit()
    return trainer
