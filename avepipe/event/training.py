"""Event-model training: published schedules, one epoch of training and validation, prediction.

The loop only uses the model interface (``compute_loss``, ``predict``), so every
registered event network trains through it. The run directory, model selection and
exact resume are the run machinery's (avepipe/run/); here the learning rate and the
shuffling order are pure functions of the epoch and the seed, so a resumed run repeats them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset
from tqdm import tqdm

from avepipe import distributed
from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.data.dataset import FeatureDataset, StorageDtypeBatches, already_batched
from avepipe.event.precision import check_precision, require_bf16_gpu
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import registry
from avepipe.models.checkpoint import read_checkpoint_info, tau_as_json
from avepipe.models.registry import AUTHORS, Recipe
from avepipe.run.directory import CheckpointLabels, RunDirectory
from avepipe.run.loop import EpochRun
from avepipe.run.seeding import epoch_seed

PROGRESS_EVERY = 25    # steps between the running-loss updates of the progress bar (each one waits for the GPU)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a run: a registered model's recipe (``defaults_for``) with the user's changes.

    ``model_options`` are the network's build options (PSP's ``tau``, CPSP's ``cpsp_loss``, ...);
    left out, the model's defaults apply. The schedule fields mean what they mean in ``Recipe``.
    """

    model: str = "psp"
    setting: str = "fully"
    recipe: str = AUTHORS
    epochs: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = (60, 120)
    lr_gamma: float = 0.8
    lr_period: int | None = None
    lr_unit: str = "epoch"
    clip_grad_norm: float | None = None   # max gradient norm, None = no clipping
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    dropout: float | None = None          # None = the model's own dropout probabilities
    precision: str = "fp32"               # one of event.precision.TRAIN_PRECISIONS
    model_options: dict = field(default_factory=dict)

    def __post_init__(self):
        check_precision(self.precision)

    def lr_at(self, count: int) -> float:
        """Learning rate after ``count`` ``lr_unit``s (1-based epoch, or optimiser steps taken so far)."""
        decays = sum(1 for m in self.lr_milestones if count > m)
        if self.lr_period:
            decays += (count - (1 if self.lr_unit == "epoch" else 0)) // self.lr_period
        return self.lr * self.lr_gamma ** decays

    def to_json(self) -> dict:
        """Flat JSON: the model options sit beside the schedule (as ``tau`` and ``cpsp_loss`` always have)."""
        plain = {k: v for k, v in asdict(self).items() if k != "model_options"}
        return {**plain, **{k: tau_as_json(v) if k == "tau" else v for k, v in self.model_options.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)} - {"model_options"}
        plain = {k: v for k, v in data.items() if k in known}
        options = {k: v for k, v in data.items() if k not in known and v is not None}
        if plain.get("model") == "cpsp":
            options.setdefault("cpsp_loss", "corrected")    # a CPSP run saved before the option existed
        if "tau" in options:
            options["tau"] = float(options["tau"])
        plain["lr_milestones"] = tuple(plain["lr_milestones"])
        return cls(**plain, model_options=options)


def defaults_for(model: str, setting: str, recipe: str = AUTHORS, model_options: dict | None = None,
                 **overrides) -> TrainConfig:
    """The ``recipe`` of ``model``/``setting`` from the registry with ``overrides`` (None values ignored)."""
    try:
        family = registry.get(model)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if setting not in family.settings:
        raise UserError(f"no {model!r} model for the {setting!r} setting (it has: {', '.join(family.settings)})")
    try:
        base = family.recipe(setting, recipe)
    except KeyError as exc:
        raise UserError(exc.args[0]) from None
    options = {**base.model_options, **{k: v for k, v in (model_options or {}).items() if v is not None}}
    allowed = {option.name: option for option in family.options}
    for name in options:
        if name not in allowed:
            takers = [f.name for f in registry.families().values() if name in {o.name for o in f.options}]
            if not takers:
                raise UserError(f"no model takes the option {name} (given for {model!r})")
            raise UserError(f"the option {name} applies to {', '.join(takers)} only, not {model!r}")
        if setting not in allowed[name].settings:
            raise UserError(f"the option {name} applies to {model} {' and '.join(allowed[name].settings)} only, "
                            f"not {setting}")
    schedule = {f.name: getattr(base, f.name) for f in fields(Recipe) if f.name not in ("source", "model_options")}
    config = TrainConfig(model=model, setting=setting, recipe=recipe, **schedule, model_options=options)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)


def _loader(dataset: Dataset, batch_size: int, workers: int, device: torch.device,
            batches: distributed.PlannedBatches | None = None) -> DataLoader:
    """Batches in dataset order, or exactly the index lists of ``batches`` (whose plan may change per epoch:
    such a loader is made once and its workers persist). For a GPU the batches are pinned and keep the
    cache's dtype (``StorageDtypeBatches``; ``_to`` makes them float32 on the GPU)."""
    on_gpu = device.type == "cuda"
    if on_gpu and isinstance(dataset, FeatureDataset):
        dataset = StorageDtypeBatches(dataset)
    batching = ({"batch_sampler": batches} if batches is not None
                else {"batch_size": batch_size, "sampler": SequentialSampler(dataset)})
    return DataLoader(dataset, collate_fn=already_batched, num_workers=workers,
                      persistent_workers=workers > 0 and batches is not None, pin_memory=on_gpu, **batching)


def _to(batch: dict, device: torch.device) -> dict:
    """The batch on ``device``, float16 features made float32 after the copy."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in moved.items()}


@torch.no_grad()
def predict_dataset(net: nn.Module, dataset: Dataset, batch_size: int = 64, device: torch.device | str = "cpu",
                    workers: int = 0, desc: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted labels, confidences and true labels ``[N, T]`` for a whole dataset, in dataset order."""
    device = torch.device(device)
    net.eval()
    labels, confidences, truth = [], [], []
    batches = _loader(dataset, batch_size, workers, device)
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=desc is None):
        batch = _to(batch, device)
        pred, conf = net.predict(net(batch["audio"], batch["visual"]))
        labels.append(pred.cpu().numpy())
        confidences.append(conf.float().cpu().numpy())
        truth.append(batch["segment_labels"].cpu().numpy())
    return np.concatenate(labels), np.concatenate(confidences), np.concatenate(truth)


def _optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    """The recipe's optimiser (every recipe so far uses Adam)."""
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


def _steps_per_epoch(videos: int, batch_size: int) -> int:
    return math.ceil(videos / batch_size)


class Trainer(EpochRun):
    """One event-model run in ``run_dir``: ``fit()`` trains (or, after ``resume()``, continues) it; the best
    validation segment accuracy picks ``best/``."""

    scores = ("train_acc", "val_acc")
    score_label = "segment accuracy"

    def __init__(self, net: nn.Module, config: TrainConfig, train_set: Dataset, val_set: Dataset,
                 run_dir: str | Path, class_names: list[str], extractor: ExtractorConfig,
                 device: str | None = None, workers: int = 0, progress: bool = True,
                 monitor: dict[str, Dataset] | None = None, on_epoch: Callable[[dict], None] | None = None):
        """``monitor``: more splits scored every epoch (``<name>_acc`` in the history), never used for selection.
        ``on_epoch``: called with each epoch's history row, on the main rank."""
        self.ranks = distributed.active_ranks()
        device = select_device(device)
        if config.precision == "bf16":
            require_bf16_gpu(device)
        net.to(device)
        if config.dropout is not None:
            net.set_dropout(config.dropout)
        super().__init__(net, _optimizer(config, net.parameters()), run_dir, config.epochs,
                         CheckpointLabels(class_names, extractor), device, self.ranks.is_main, progress)
        self.monitor = dict(monitor or {})
        self.on_epoch = on_epoch
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.class_names, self.extractor = class_names, extractor
        self.workers = workers
        self._train_batches: distributed.PlannedBatches | None = None
        self._train_loader: DataLoader | None = None    # made at the first epoch, its workers kept
        # Under torchrun the forward/backward goes through DDP (gradients averaged over ranks);
        # ``self.net`` stays the plain module that is checkpointed and used for prediction.
        self.train_net = (DistributedDataParallel(self.net, device_ids=[self.device.index]
                                                  if self.device.type == "cuda" else None)
                          if self.ranks.distributed else self.net)

    @property
    def best_val_accuracy(self) -> float:
        return self.best_score[0] if self.best_score is not None else -1.0

    def checkpoint_extra(self) -> dict:
        return {"epoch": self.epoch, "train_config": self.config.to_json(),
                "train_segments": getattr(self.train_set, "segments", None),
                "val_segment_accuracy": self.history[-1]["val_acc"] if self.history else None}

    def state(self) -> dict:
        return {"best_val_accuracy": self.best_val_accuracy, "train_config": self.config.to_json()}

    def restore(self, state: dict) -> None:
        if state.get("best_score") is None and state.get("best_val_accuracy", -1.0) >= 0:   # saved before best_score
            self.best_score = (state["best_val_accuracy"],)

    def summary(self, row: dict) -> str:
        return (f"epoch {row['epoch']}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.3f} "
                f"val acc {row['val_acc']:.3f} (best {self.best_val_accuracy:.3f} @ {self.best_epoch})")

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.config
        self.net.start_epoch(epoch)
        per_step = cfg.lr_unit == "step"
        steps_done = (epoch - 1) * _steps_per_epoch(len(self.train_set), cfg.batch_size)
        if not per_step:
            self._set_lr(cfg.lr_at(epoch))
        shuffle = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
        # One shuffled order and one sequence of global batches for every rank; each rank trains
        # on its own chunk of each global batch (a single process: the whole batch).
        order = torch.randperm(len(self.train_set), generator=shuffle).tolist()
        plan = distributed.split_global_batches(order, cfg.batch_size, self.ranks.rank, self.ranks.world_size)
        if self._train_loader is None:
            self._train_batches = distributed.PlannedBatches(plan)
            self._train_loader = _loader(self.train_set, cfg.batch_size, self.workers, self.device,
                                         self._train_batches)
        self._train_batches.plan = list(plan)
        loader = self._train_loader
        self.net.train()
        # Sums stay on the device (float64: as exact as the Python floats they replace) and are read
        # once per epoch: reading them every step would wait for the GPU at every step.
        sums: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        total = seen = 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False, disable=not self.progress)
        for step, (part, batch) in enumerate(zip(plan, bar)):
            batch = _to(batch, self.device)
            if per_step:
                self._set_lr(cfg.lr_at(steps_done))
                steps_done += 1
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                out = self.train_net(batch["audio"], batch["visual"])
                losses = self.net.compute_loss(out, batch["segment_labels"], batch["video_label"])
            self.optimizer.zero_grad(set_to_none=True)
            # Mean over the global batch: DDP averages gradients over ranks, so weight by share x world.
            scale = part.share * self.ranks.world_size
            (losses["loss"] * scale).backward()
            if cfg.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_grad_norm)
            self.optimizer.step()
            n = part.real
            seen += n
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach().double() * n
            if n:
                with torch.no_grad():
                    pred, _ = self.net.predict(out)
                correct += (pred == batch["segment_labels"]).sum()
                total += pred.numel()
            if seen and self.progress and step % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{float(sums['loss']) / seen:.4f}")
        names = list(sums)    # the loss dict's order: the same on every rank
        host = torch.stack([sums[k] for k in names] + [correct.double()]).tolist()  # the epoch's one sync
        reduced = distributed.all_reduce_sum(host + [total, seen], self.device)
        *part_sums, correct, total, seen = reduced
        row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update({f"train_{k}": sums_k / seen for k, sums_k in zip(names, part_sums)})
        row["train_acc"] = correct / total
        return row

    def _accuracy(self, dataset: Dataset) -> float:
        """Segment accuracy on ``dataset``; under torchrun each rank predicts a contiguous share."""
        shares = np.array_split(np.arange(len(dataset)), self.ranks.world_size)
        subset = dataset if not self.ranks.distributed else Subset(dataset, shares[self.ranks.rank].tolist())
        correct = total = 0
        if len(subset):
            pred, _, truth = predict_dataset(self.net, subset, self.config.batch_size, self.device, self.workers)
            correct, total = int(np.sum(pred == truth)), pred.size
        correct, total = distributed.all_reduce_sum([correct, total], self.device)
        return correct / total

    def validate(self, row: dict) -> tuple:
        row["val_acc"] = self._accuracy(self.val_set)
        row.update({f"{name}_acc": self._accuracy(dataset) for name, dataset in self.monitor.items()})
        return (row["val_acc"],)

    def fit(self) -> TrainResult:
        super().fit()
        return TrainResult(self.run_dir, self.best_epoch, self.best_val_accuracy, self.history)


def stored_run(run_dir: Path) -> tuple[TrainConfig, ExtractorConfig, list[str]]:
    """Train config, extractor and class names of the run to resume."""
    run = RunDirectory(run_dir)
    info = read_checkpoint_info(run.resume_dir())
    state = run.read_state()
    return TrainConfig.from_json(state["train_config"]), info.extractor, info.class_names


__all__ = ["TrainConfig", "Trainer", "TrainResult", "defaults_for", "predict_dataset", "stored_run"]
