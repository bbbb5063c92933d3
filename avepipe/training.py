"""Training orchestration: published schedules, model selection on validation, exact resume.

The loop only uses the model interface (``compute_loss``, ``predict``), so every
PSP-family network trains through it. Resume is exact because everything that
steers training is restored: weights, Adam moments, the torch/NumPy/Python RNG
states, and the epoch (the learning rate and the shuffling order are pure
functions of the epoch and the seed). Nothing is pickled: tensors go to
safetensors, the rest to JSON.
"""
from __future__ import annotations

import csv
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset
from tqdm import tqdm

from avepipe import distributed, rng_state
from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.data.dataset import FeatureDataset, StorageDtypeBatches, already_batched
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import registry
from avepipe.models.checkpoint import read_checkpoint_info, save_checkpoint, tau_as_json
from avepipe.models.registry import AUTHORS, Recipe

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
METRICS_FILE = "metrics.csv"
CURVES_FILE = "curves.png"
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
    model_options: dict = field(default_factory=dict)

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
    options = {k: v for k, v in (model_options or {}).items() if v is not None}
    allowed = {option.name for option in family.options}
    for name in options:
        if name not in allowed:
            takers = [f.name for f in registry.families().values() if name in {o.name for o in f.options}]
            raise UserError(f"the option {name} applies to {', '.join(takers) or 'no model'} only, not {model!r}")
    schedule = {f.name: getattr(base, f.name) for f in fields(Recipe) if f.name != "source"}
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


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2 ** 63)


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer state_dict into tensors (safetensors) and everything else (JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict, info: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in info["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


class Trainer:
    """One training run in ``run_dir``: ``fit()`` trains (or resumes) and writes checkpoints and logs."""

    def __init__(self, net: nn.Module, config: TrainConfig, train_set: Dataset, val_set: Dataset,
                 run_dir: str | Path, class_names: list[str], extractor: ExtractorConfig,
                 device: str | None = None, workers: int = 0, progress: bool = True,
                 monitor: dict[str, Dataset] | None = None):
        """``monitor``: more splits scored every epoch (``<name>_acc`` in the history), never used for selection."""
        self.net = net
        self.monitor = dict(monitor or {})
        self.config = config
        self.train_set, self.val_set = train_set, val_set
        self.run_dir = Path(run_dir)
        self.class_names = class_names
        self.extractor = extractor
        self.ranks = distributed.active_ranks()
        self.device = select_device(device)
        self.workers = workers
        self.progress = progress and self.ranks.is_main
        self.net.to(self.device)
        if config.dropout is not None:
            self.net.set_dropout(config.dropout)
        # Under torchrun the forward/backward goes through DDP (gradients averaged over ranks);
        # ``self.net`` stays the plain module that is checkpointed and used for prediction.
        self.train_net = (DistributedDataParallel(self.net, device_ids=[self.device.index]
                                                  if self.device.type == "cuda" else None)
                          if self.ranks.distributed else self.net)
        self.optimizer = _optimizer(config, self.net.parameters())
        self.epoch = 0
        self.best_epoch = 0
        self.best_val_accuracy = -1.0
        self.history: list[dict] = []
        self._train_batches: distributed.PlannedBatches | None = None
        self._train_loader: DataLoader | None = None    # made at the first epoch, its workers kept

    # -- state -------------------------------------------------------------------------------
    def _save_last(self) -> None:
        """Write ``last`` beside the old one and swap, so one complete ``last`` always exists."""
        last, tmp, old = (self.run_dir / n for n in ("last", "last.tmp", "last.old"))
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(tmp, self.net, self.class_names, self.extractor, extra=self._extra())
        opt_tensors, opt_info = _optimizer_state(self.optimizer)
        rng_tensors, rng_info = rng_state.capture(self.device)
        save_file({**opt_tensors, **rng_tensors}, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps({
            "epoch": self.epoch, "best_epoch": self.best_epoch, "best_val_accuracy": self.best_val_accuracy,
            "train_config": self.config.to_json(), "optimizer": opt_info, "rng": rng_info,
            "history": self.history}, indent=1) + "\n", encoding="utf-8")
        if last.exists():
            shutil.rmtree(old, ignore_errors=True)
            last.rename(old)
        tmp.rename(last)
        shutil.rmtree(old, ignore_errors=True)

    def _extra(self) -> dict:
        return {"epoch": self.epoch, "train_config": self.config.to_json(),
                "train_segments": getattr(self.train_set, "segments", None),
                "val_segment_accuracy": self.history[-1]["val_acc"] if self.history else None}

    def resume(self) -> None:
        """Restore everything from ``run_dir/last`` (or ``last.old`` if a swap was interrupted)."""
        last = resume_dir(self.run_dir)
        info = json.loads((last / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(last / STATE_TENSORS))
        weights = load_file(str(last / "model.safetensors"))
        self.net.load_state_dict(weights)
        self.net.to(self.device)
        _load_optimizer_state(self.optimizer, {k: v.to(self.device) for k, v in tensors.items()
                                               if k.startswith("optimizer.")}, info["optimizer"])
        rng_state.restore(tensors, info["rng"], self.device)
        self.epoch, self.best_epoch = info["epoch"], info["best_epoch"]
        self.best_val_accuracy, self.history = info["best_val_accuracy"], info["history"]

    # -- loop --------------------------------------------------------------------------------
    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_epoch(self, epoch: int) -> dict:
        cfg = self.config
        self.net.start_epoch(epoch)
        per_step = cfg.lr_unit == "step"
        steps_done = (epoch - 1) * _steps_per_epoch(len(self.train_set), cfg.batch_size)
        if not per_step:
            self._set_lr(cfg.lr_at(epoch))
        shuffle = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch))
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

    def fit(self) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while self.epoch < self.config.epochs:
            epoch = self.epoch + 1
            started = time.perf_counter()
            row = self._train_epoch(epoch)
            row["val_acc"] = self._accuracy(self.val_set)
            row.update({f"{name}_acc": self._accuracy(dataset) for name, dataset in self.monitor.items()})
            row["time_s"] = time.perf_counter() - started
            self.epoch = epoch
            self.history.append(row)
            improved = row["val_acc"] > self.best_val_accuracy
            if improved:
                self.best_val_accuracy, self.best_epoch = row["val_acc"], epoch
            if not self.ranks.is_main:
                continue    # every rank holds the same weights and history; rank 0 writes them
            if improved:
                save_checkpoint(self.run_dir / "best", self.net, self.class_names, self.extractor,
                                extra=self._extra())
            self._save_last()
            write_metrics(self.run_dir / METRICS_FILE, self.history)
            plot_curves(self.run_dir / CURVES_FILE, self.history)
            if self.progress:
                tqdm.write(f"epoch {epoch}: loss {row['train_loss']:.4f} train acc {row['train_acc']:.3f} "
                           f"val acc {row['val_acc']:.3f} (best {self.best_val_accuracy:.3f} @ {self.best_epoch})")
        return TrainResult(self.run_dir, self.best_epoch, self.best_val_accuracy, self.history)


def resume_dir(run_dir: Path) -> Path:
    """The complete ``last`` checkpoint of a run (``last.old`` survives an interrupted swap)."""
    for name in ("last", "last.old"):
        if (run_dir / name / STATE_JSON).is_file():
            return run_dir / name
    raise UserError(f"{run_dir}: nothing to resume (no last/{STATE_JSON}); start without --resume")


def stored_run(run_dir: Path) -> tuple[TrainConfig, ExtractorConfig, list[str]]:
    """Train config, extractor and class names of the run to resume."""
    last = resume_dir(run_dir)
    info = read_checkpoint_info(last)
    state = json.loads((last / STATE_JSON).read_text(encoding="utf-8"))
    return TrainConfig.from_json(state["train_config"]), info.extractor, info.class_names


def write_metrics(path: Path, history: list[dict]) -> None:
    """The per-epoch table, rewritten whole each epoch so it always matches the saved state."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def plot_curves(path: Path, history: list[dict]) -> None:
    """Loss parts (left) and train/validation segment accuracy (right) per epoch."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key in history[0]:
        if key.startswith("train_") and key != "train_acc":
            values = [row[key] for row in history]
            if all(math.isfinite(v) and v > 0 for v in values):
                ax_loss.plot(epochs, values, marker=".", label=key[len("train_"):])
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [row["train_acc"] for row in history], marker=".", label="train")
    ax_acc.plot(epochs, [row["val_acc"] for row in history], marker=".", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="segment accuracy", ylim=(0, 1), title="accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def seed_everything(seed: int) -> None:
    """Seed torch, NumPy and Python so model initialisation is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


__all__ = ["TrainConfig", "Trainer", "TrainResult", "defaults_for", "predict_dataset",
           "seed_everything", "stored_run", "resume_dir", "write_metrics", "plot_curves"]
