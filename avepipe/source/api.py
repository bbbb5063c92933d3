"""Entry points of the sound-source task for the CLI: train and evaluate, each from one options object.

boxes.json layouts that ``load_boxes`` reads (boxes in pixels of the original frame,
x1/y1 exclusive; a second without a box, or ``null``, is not evaluated):

- the synth generator's: ``{"<video_id>": [[x0, y0, x1, y1] | null, ...]}`` (one entry per
  second), the frame size coming from ``scenes.json`` (``"size": [w, h]``) next to it or
  from the ``frame_size`` argument;
- self-describing: ``{"<video_id>": {"frame_size": [w, h], "boxes": {"<second>": [...]}}}``
  (``"boxes"`` may also be a list indexed by second).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from avepipe import distributed
from avepipe.data.cache import CacheSet
from avepipe.data.splits import seeded_split
from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.extract.provenance import require_same_extractor
from avepipe.models.checkpoint import load_checkpoint, read_checkpoint_info
from avepipe.models.fnac import SoundSourceLocalizer
from avepipe.models.fnac_losses import TAU
from avepipe.run.directory import RunDirectory
from avepipe.source.baselines import baseline_metrics, near_fixed_cell_warning
from avepipe.source.evaluation import SourceReport, box_samples, evaluate_localizer, score_with_baselines
from avepipe.source.frame_boxes import is_frame_boxes, second_boxes
from avepipe.source.metrics import Box
from avepipe.source.training import (DEFAULT_SCHEDULE, SourceTrainConfig, SourceTrainer, schedule_config,
                                     stored_config, train_source_localizer)


@dataclass(frozen=True)
class VideoBoxes:
    frame_size: tuple[int, int]   # (width, height) of the original frame
    boxes: dict[int, Box]         # second -> (x0, y0, x1, y1)


def parse_boxes(data: dict, source: str = "boxes",
                frame_size: tuple[int, int] | None = None) -> dict[str, VideoBoxes]:
    """Validate a boxes.json structure; ``source`` names the file in error messages.

    ``frame_size`` is used for videos whose entry does not carry its own.
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object mapping video ids to boxes")
    parsed = {}
    for video_id, entry in data.items():
        if isinstance(entry, list):
            entry = {"boxes": entry}
        try:
            width, height = (int(v) for v in entry.get("frame_size") or frame_size)
        except (AttributeError, TypeError, ValueError):
            raise UserError(f"{source}: video {video_id!r} has no frame size (give \"frame_size\": [w, h], "
                            "a scenes.json with \"size\" next to it, or the frame size option)") from None
        try:
            raw = entry["boxes"]
            items = raw.items() if isinstance(raw, dict) else enumerate(raw)
            boxes = {int(t): tuple(float(c) for c in box) for t, box in items if box is not None}
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{source}: video {video_id!r}: boxes must be [x0, y0, x1, y1] per second") from None
        bad = [t for t, b in boxes.items() if len(b) != 4 or b[2] <= b[0] or b[3] <= b[1]]
        if bad:
            raise UserError(f"{source}: video {video_id!r} second {bad[0]}: box must be [x0, y0, x1, y1] with x1>x0, y1>y0")
        parsed[str(video_id)] = VideoBoxes((width, height), boxes)
    return parsed


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def load_boxes(path: str | Path, frame_size: tuple[int, int] | None = None,
               sample_fps: int | None = None) -> dict[str, VideoBoxes]:
    """Read boxes.json; without ``frame_size``, a sibling scenes.json ``"size"`` supplies it.

    Per-frame boxes (frame_boxes.json) become per-second unions of the frames sampled at
    ``sample_fps`` (the extractor's; avepipe/source/frame_boxes.py).
    """
    path = Path(path)
    data = _read_json(path, "boxes file")
    if is_frame_boxes(data):
        if sample_fps is None:
            raise UserError(f"{path}: per-frame boxes need the extractor's frames per second")
        return parse_boxes(second_boxes(data, str(path), sample_fps), str(path))
    scenes = path.with_name("scenes.json")
    if frame_size is None and scenes.is_file():
        frame_size = _read_json(scenes, "scenes file").get("size")
    return parse_boxes(data, str(path), frame_size)


def load_source_localizer(directory: str | Path, device: str = "cpu", hint: str | None = None):
    """``(model in eval mode, CheckpointInfo)`` of a ``task="source"`` checkpoint."""
    return load_checkpoint(directory, device, task="source", hint=hint)


@dataclass(frozen=True)
class SourceTrainOptions:
    """What ``avepipe source train`` was asked. ``schedule`` names the defaults (SCHEDULES in
    avepipe/source/training.py); ``epochs``, ``batch_size``, ``lr``, ``seed`` left None come from it,
    ``tau`` None is the model's. With ``boxes``, the epoch with the best validation peak-in-box is kept."""

    caches: tuple[Path, ...]
    run_dir: Path
    boxes: Path | None = None
    schedule: str = DEFAULT_SCHEDULE
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    tau: float | None = None
    seed: int | None = None
    use_fns: bool = True
    use_tne: bool = True
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    device: str | None = None
    resume: bool = False
    progress: bool = True

    def config(self) -> SourceTrainConfig:
        config = schedule_config(self.schedule, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                 seed=self.seed, use_fns=self.use_fns, use_tne=self.use_tne)
        if self.tau is not None:
            config = replace(config, model_options={**config.model_options, "tau": self.tau})
        return config


def _run_config(options: SourceTrainOptions) -> SourceTrainConfig:
    """A fresh run's config in an empty run directory, or the stored one of the run to resume (whose epochs
    ``options.epochs`` may extend; other settings that differ are refused)."""
    run = RunDirectory(options.run_dir)
    if not options.resume:
        if run.holds_run():
            raise UserError(f"{options.run_dir}: already holds a sound-source run (last/); resume it or train "
                            "into another directory")
        return options.config()
    stored = stored_config(options.run_dir)
    asked = {"batch_size": options.batch_size, "lr": options.lr, "seed": options.seed,      # None: not given
             "use_fns": None if options.use_fns else False, "use_tne": None if options.use_tne else False}
    changed = [f"{k}: run {getattr(stored, k)!r} vs given {v!r}" for k, v in asked.items()
               if v is not None and getattr(stored, k) != v]
    if options.tau is not None and stored.model_options.get("tau", TAU) != options.tau:
        changed.append(f"tau: run {stored.model_options.get('tau', TAU)!r} vs given {options.tau!r}")
    if changed:
        raise UserError(f"{options.run_dir}: a resumed run keeps its hyper-parameters; differing: {'; '.join(changed)}")
    return replace(stored, epochs=options.epochs) if options.epochs else stored


def _validator(options: SourceTrainOptions, cache, splits: dict[str, list[str]], device):
    """Model -> validation figures on the boxed validation seconds (None without boxes or validation videos)."""
    if options.boxes is None or not splits["val"]:
        return None, None
    boxes = load_boxes(options.boxes, sample_fps=cache.config.fps)
    _, val_samples = box_samples(cache, boxes, splits["val"])
    if not len(val_samples):
        raise UserError(f"{options.boxes}: none of the {len(splits['val'])} validation videos has a boxed second "
                        "with audio, so no epoch can be selected; use a larger --val-fraction or another --seed")

    def validate(model: SoundSourceLocalizer) -> dict:
        return vars(evaluate_localizer(model, cache, boxes, splits["val"], device=device))
    return validate, boxes


def run_source_training(options: SourceTrainOptions, log: Callable[[str], None] | None = None) -> SourceTrainer:
    """``avepipe source train``: train (or resume) on the train part of a seeded split of the cached videos.

    The split (stored in every checkpoint) is seeded by the run's seed; with boxes, ``best/`` is the epoch
    with the best validation peak-in-box, and ``log`` gets a warning when that is no better than the best
    fixed cell. A run directory that already holds a run is refused unless resuming.
    """
    if distributed.env_ranks().distributed:
        raise UserError("avepipe source train runs as one process, not under torchrun (every rank would train "
                        "the same model and write the same checkpoint; its negatives are the other pairs of the "
                        "whole batch, which splitting among ranks would change): start it without torchrun and "
                        "choose the GPU with --device or CUDA_VISIBLE_DEVICES")
    device = select_device(options.device)     # a missing GPU is one line, before any work
    config = _run_config(options)
    cache = CacheSet(options.caches)
    if options.resume:
        splits = read_checkpoint_info(RunDirectory(options.run_dir).resume_dir()).extra["splits"]
    else:
        fractions = (1.0 - options.val_fraction - options.test_fraction, options.val_fraction, options.test_fraction)
        if fractions[0] <= 0:
            raise UserError(f"validation and test fractions {options.val_fraction} and {options.test_fraction} "
                            "leave no training videos")
        splits = seeded_split(cache.ids, fractions, config.seed)
    validate, boxes = _validator(options, cache, splits, device)
    if options.resume and validate is None and RunDirectory(options.run_dir).read_state()["best_score"] is not None:
        raise UserError(f"{options.run_dir}: the run keeps the epoch that is best on the validation boxes; "
                        "resume it with its boxes file")
    trainer = train_source_localizer(cache, splits["train"], options.run_dir, config, device, validate,
                                     {"splits": splits}, options.resume, options.progress)
    if validate is not None and log is not None:
        _, train_samples = box_samples(cache, boxes, splits["train"])
        _, val_samples = box_samples(cache, boxes, splits["val"])
        if len(train_samples):
            fixed = baseline_metrics(train_samples, val_samples)["fixed_cell"]["peak_in_box"]
            message = near_fixed_cell_warning(trainer.best_score[0], fixed, len(splits["train"]))
            if message:
                log(message)
    return trainer


@dataclass(frozen=True)
class SourceEvaluateOptions:
    """What ``avepipe source evaluate`` was asked. ``checkpoint`` is a checkpoint directory: a run's ``best/``
    (or ``last/``), or the ``checkpoint/`` of a run written before runs had best/ and last/.
    ``ids`` score those videos; otherwise the run's ``split``, with the baselines beside the model."""

    checkpoint: Path
    caches: tuple[Path, ...]
    boxes: Path
    ids: tuple[str, ...] | None = None
    threshold: float | str = 0.5
    split: str = "test"
    linear_probe: bool = False
    frame_size: tuple[int, int] | None = None
    device: str | None = None


def evaluate_source(options: SourceEvaluateOptions) -> SourceReport:
    """``avepipe source evaluate``: refuses a cache made by another extractor."""
    device = select_device(options.device)
    checkpoint = options.checkpoint
    model, info = load_source_localizer(checkpoint, device)
    cache = CacheSet(options.caches)
    require_same_extractor(info.extractor, cache.config, str(cache.paths[0]), f"the checkpoint {checkpoint}",
                           ("checkpoint", "cache"), "evaluate on features of the checkpoint's extractor")
    boxes = load_boxes(options.boxes, options.frame_size, cache.config.fps)
    if options.ids is not None:
        return evaluate_localizer(model, cache, boxes, options.ids, options.threshold, device)
    return score_with_baselines(model, cache, boxes, info.extra.get("splits"), options.split, options.threshold,
                                device, options.linear_probe)
