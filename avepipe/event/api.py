"""An event-model training run from feature caches and labels: started fresh, or resumed exactly.

``train_event_model`` is what ``avepipe train`` runs: it checks a resumed run against its
stored state, resolves the splits (official or a seeded random one, written into the run
so ``avepipe evaluate`` finds the same held-out videos), builds the datasets and the model,
and fits it, warning when the run makes too few optimiser steps to learn or ends
no better than always answering the majority class (avepipe/event/baselines.py). It is the
event counterpart of avepipe/source/api.py.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from avepipe import distributed
from avepipe.data.annotations import load_annotations
from avepipe.data.cache import CacheSet
from avepipe.data.dataset import MEMORY_SHARE, FeatureDataset, available_memory_bytes, estimated_bytes
from avepipe.data.events import Annotations
from avepipe.data.splits import resolve_splits, write_splits
from avepipe.errors import UserError
from avepipe.event import baselines
from avepipe.event.precision import emulated_bf16_warning
from avepipe.event.training import Trainer, TrainConfig, TrainResult, defaults_for, stored_run
from avepipe.extract.provenance import ExtractorConfig, require_same_extractor
from avepipe.machine import cpu_flags
from avepipe.models import build_model, registry
from avepipe.models.registry import AUTHORS
from avepipe.run.seeding import seed_everything


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_config(run_dir: Path, extractor: ExtractorConfig, cache_path: Path, model: str, setting: str,
               given: dict, resume: bool, recipe: str = "authors",
               model_options: dict | None = None) -> tuple[TrainConfig, list[str] | None]:
    """The run's ``TrainConfig`` and, when resuming, its class names.

    Fresh: the published defaults of ``model``/``setting`` with ``given`` on top, in a run
    directory that holds no run yet. Resumed: the stored config (``given`` may only extend
    ``epochs``), on features of the run's own extractor.
    """
    if not resume:
        if (run_dir / "last").exists():
            raise UserError(f"{run_dir}: already holds a run; use --resume to continue it or another -o")
        return defaults_for(model, setting, recipe, model_options, **given), None
    config, run_extractor, class_names = stored_run(run_dir)
    require_same_extractor(run_extractor, extractor, str(cache_path), f"the run in {run_dir}", ("run", "cache"),
                           "resume with the run's cache")
    changed = [f"{k}: run {getattr(config, k)!r} vs given {v!r}" for k, v in given.items()
               if k != "epochs" and getattr(config, k) != v]
    changed += [f"{k}: run {config.model_options.get(k)!r} vs given {v!r}" for k, v in (model_options or {}).items()
                if v is not None and config.model_options.get(k) != v]
    if changed:
        raise UserError(f"{run_dir}: --resume keeps the run's hyper-parameters; differing: {'; '.join(changed)}")
    if "epochs" in given:
        config = replace(config, epochs=given["epochs"])
    return config, class_names


@dataclass(frozen=True)
class TrainOptions:
    """What ``avepipe train`` was asked: data, model, recipe changes, and where the run goes.

    ``schedule`` overrides fields of the recipe (epochs, batch_size, lr, ...); ``model_options``
    are the network's build options. ``in_memory``: True, False or "auto" (hold the features
    in RAM when they fit).
    """

    caches: tuple[Path, ...]
    annotations: Path
    run_dir: Path
    model: str = "psp"
    setting: str = "fully"
    recipe: str = AUTHORS
    schedule: dict = field(default_factory=dict)
    model_options: dict = field(default_factory=dict)
    splits_dir: Path | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None
    background_caches: tuple[Path, ...] = ()
    device: str | None = None
    workers: int = 0
    in_memory: bool | str = "auto"
    resume: bool = False
    monitor_test: bool = False        # also score the test split every epoch (reported apart, never selects)


def train_event_model(options: TrainOptions, log: Callable[[str], None] = _stderr,
                      ranks: distributed.Ranks | None = None) -> TrainResult:
    """Train (or resume) an event model as ``options`` say. Under torchrun every rank calls this; only rank 0 writes.

    ``ranks``: the job this run belongs to (default: torchrun's environment; ``Ranks()`` trains
    in this process alone, as ``compare`` does with one run per rank).
    """
    run_dir = Path(options.run_dir)
    cache_set = CacheSet([*options.caches, *options.background_caches])    # each cache opened once: datasets share
    labelled = cache_set.caches[:len(options.caches)]
    config, run_classes = run_config(run_dir, cache_set.config, labelled[0].path, options.model, options.setting,
                                     dict(options.schedule), options.resume, options.recipe, options.model_options)
    annotations = load_annotations(options.annotations)
    if run_classes is not None and run_classes != annotations.classes:
        raise UserError(f"{options.annotations}: class list differs from the run's checkpoint")
    ranks = ranks or distributed.env_ranks()
    train_set, val_set, monitor = _datasets(options, cache_set, annotations, config.seed, ranks, log)

    seed_everything(config.seed)
    net = build_model(config.model, config.setting, num_classes=len(annotations.classes) - 1, **config.model_options)
    config = replace(config, model_options=net.options())     # recorded with the model's defaults filled in
    device = distributed.local_device(options.device, ranks) if ranks.distributed else options.device
    majority_train = baselines.majority_accuracy(train_set.segment_labels, train_set.segment_labels)
    trainer = Trainer(net, config, train_set, val_set, run_dir, annotations.classes, cache_set.config,
                      device=device, workers=options.workers, monitor=monitor,
                      on_epoch=lambda row: _warn(log, baselines.not_learning_warning(
                          row["epoch"], config.epochs, row["train_acc"], majority_train)))
    if options.resume:
        trainer.resume()
    if ranks.is_main:
        _warn(log, baselines.small_data_note(len(train_set), config.recipe, _small_data_measured(config)))
        _warn(log, baselines.few_steps_warning(len(train_set), config.batch_size, config.epochs))
        _warn(log, baselines.small_validation_warning(len(val_set), int(val_set.segment_labels.size)))
        _warn(log, emulated_bf16_warning(config.precision, trainer.device, cpu_flags()))
    result = trainer.fit()
    if ranks.is_main:
        majority = baselines.majority_accuracy(train_set.segment_labels, val_set.segment_labels)
        _warn(log, baselines.near_majority_warning(result.best_val_accuracy, majority))
    return result


def _datasets(options: TrainOptions, cache_set: CacheSet, annotations: Annotations, seed: int,
              ranks: distributed.Ranks, log: Callable[[str], None]
              ) -> tuple[FeatureDataset, FeatureDataset, dict[str, FeatureDataset] | None]:
    """The training and validation sets of the run's splits (written into the run, where ``evaluate`` finds
    the same held-out videos), and the test set when ``options.monitor_test`` asks for it."""
    labelled, background = cache_set.caches[:len(options.caches)], cache_set.caches[len(options.caches):]
    available = {vid for c in labelled for vid in c.ids}
    splits, origin = resolve_splits(annotations, options.annotations, options.splits_dir, available,
                                    options.val_fraction, options.test_fraction, seed)
    train_ids, val_ids = splits["train"], splits["val"]
    if options.limit:
        train_ids, val_ids = train_ids[:options.limit], val_ids[:options.limit]
    if not train_ids or not val_ids:
        raise UserError(f"{options.annotations}: empty train or validation split ({origin})")
    if ranks.is_main:
        log(f"{origin}: {len(train_ids)} train, {len(val_ids)} val videos")
        (Path(options.run_dir) / "splits").mkdir(parents=True, exist_ok=True)
        write_splits(Path(options.run_dir) / "splits", annotations, splits)
    in_memory = options.in_memory
    if in_memory == "auto" and ranks.local_world_size > 1:
        # Every rank on this machine would hold its own copy: decide for all of them together.
        segments = labelled[0].summary(labelled[0].ids[0]).segments
        in_memory = (estimated_bytes((len(train_ids) + len(val_ids)) * ranks.local_world_size, segments)
                     < MEMORY_SHARE * available_memory_bytes())
    monitor = ({"test": FeatureDataset(labelled, annotations, splits["test"], in_memory=in_memory)}
               if options.monitor_test and splits.get("test") else None)
    return (FeatureDataset(labelled, annotations, train_ids, in_memory=in_memory, background_caches=background),
            FeatureDataset(labelled, annotations, val_ids, in_memory=in_memory), monitor)


def _small_data_measured(config: TrainConfig) -> str | None:
    """What the small-data recipe of this model and setting was measured to do (its ``source``); None: there is none."""
    recipes = registry.get(config.model).recipes.get(registry.SMALL_DATA, {})
    return recipes[config.setting].source if config.setting in recipes else None


def _warn(log: Callable[[str], None], message: str | None) -> None:
    if message:
        log(message)
