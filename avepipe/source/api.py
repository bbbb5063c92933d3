"""Entry points of the sound-source task for the CLI: train, evaluate, maps for one video.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from avepipe import distributed
from avepipe.device import select_device
from avepipe.errors import UserError
from avepipe.data.cache import CacheSet
from avepipe.source.baselines import baseline_metrics, near_fixed_cell_warning
from avepipe.source.maps import source_maps  # noqa: F401  (re-exported for scripts that read maps)
from avepipe.source.evaluation import box_samples, model_maps, score_with_baselines, split_videos
from avepipe.source.metrics import Box, evaluate_maps
from avepipe.source.training import checked_ids, train_source_localizer
from avepipe.extract.provenance import require_same_extractor
from avepipe.models.fnac import SoundSourceLocalizer


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
    from avepipe.source.frame_boxes import is_frame_boxes, second_boxes

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
    from avepipe.models.checkpoint import load_checkpoint

    return load_checkpoint(directory, device, task="source", hint=hint)


def evaluate_localizer(model: SoundSourceLocalizer, cache, boxes: dict[str, VideoBoxes],
                       ids: Sequence[str] | None = None, threshold: float | str = 0.5,
                       device: str = "cpu") -> dict:
    """cIoU, AUC, mean IoU and peak-in-box over every (video, second) with a box and audio."""
    videos, samples = box_samples(cache, boxes, checked_ids(cache, ids))
    if not len(samples):
        raise UserError("no (video, second) of the cache has a box and audio to evaluate")
    return {**evaluate_maps(model_maps(model, videos, device), samples.boxes, samples.frame_sizes, threshold),
            "videos": len(videos)}


def run_source_training(cache_paths: str | Path | Sequence[str | Path], out_dir: str | Path,
                        boxes_json: str | Path | None = None, val_fraction: float = 0.1,
                        test_fraction: float = 0.1, log: Callable[[str], None] | None = None, **options) -> Path:
    """``avepipe source train``: options are those of ``train_source_localizer``.

    The cache's videos are split (seeded by ``options["seed"]``) into train/val/test, stored in
    the checkpoint; training sees the train videos only. With ``boxes_json``, the epoch with the
    best validation peak-in-box is kept, and ``log`` gets a warning when that is no better than
    the best fixed cell. Refuses an ``out_dir`` that already holds a checkpoint (a run is not
    silently replaced).
    """
    if distributed.env_ranks().distributed:
        raise UserError("avepipe source train runs as one process, not under torchrun (every rank would train "
                        "the same model and write the same checkpoint; its negatives are the other pairs of the "
                        "whole batch, which splitting among ranks would change): start it without torchrun and "
                        "choose the GPU with --device or CUDA_VISIBLE_DEVICES")
    if (Path(out_dir) / "checkpoint").exists():
        raise UserError(f"{out_dir}: already holds a sound-source run (checkpoint/); use another -o")
    options["device"] = select_device(options.get("device"))    # a missing GPU is one line, before any work
    cache = CacheSet(cache_paths)
    splits = split_videos(cache.ids, val_fraction, test_fraction, options.get("seed", 0))
    validate, val_peaks = None, []
    if boxes_json is not None and splits["val"]:
        boxes = load_boxes(boxes_json, sample_fps=cache.config.fps)
        _, val_samples = box_samples(cache, boxes, splits["val"])
        if not len(val_samples):
            raise UserError(f"{boxes_json}: none of the {len(splits['val'])} validation videos has a boxed second "
                            "with audio, so no epoch can be selected; use a larger --val-fraction or another --seed")
        device = options["device"]

        def validate(model: SoundSourceLocalizer) -> dict:
            scores = evaluate_localizer(model, cache, boxes, splits["val"], device=device)
            val_peaks.append(scores["peak_in_box"])
            return scores
    checkpoint = train_source_localizer(cache, splits["train"], out_dir, validate=validate, extra={"splits": splits},
                                        **options)
    if val_peaks and log is not None:
        _, train_samples = box_samples(cache, boxes, splits["train"])
        if len(train_samples):
            fixed = baseline_metrics(train_samples, val_samples)["fixed_cell"]["peak_in_box"]
            message = near_fixed_cell_warning(max(val_peaks), fixed, len(splits["train"]))
            if message:
                log(message)
    return checkpoint


def evaluate_source(checkpoint_dir: str | Path, cache_paths: str | Path | Sequence[str | Path],
                    boxes_json: str | Path, ids: Sequence[str] | None = None, threshold: float | str = 0.5,
                    device: str | None = None, frame_size: tuple[int, int] | None = None, split: str = "test",
                    linear_probe: bool = False) -> dict:
    """``avepipe source evaluate``: refuses a cache made by another extractor.

    Scores ``ids`` when given; otherwise the run's ``split`` with the baselines beside the model
    (avepipe/source/evaluation.py).
    """
    device = select_device(device)
    model, info = load_source_localizer(checkpoint_dir, device)
    cache = CacheSet(cache_paths)
    require_same_extractor(info.extractor, cache.config, str(cache.paths[0]), f"the checkpoint {checkpoint_dir}",
                           ("checkpoint", "cache"), "evaluate on features of the checkpoint's extractor")
    boxes = load_boxes(boxes_json, frame_size, cache.config.fps)
    if ids is not None:
        return evaluate_localizer(model, cache, boxes, ids, threshold, device)
    return score_with_baselines(model, cache, boxes, info.extra.get("splits"), split, threshold, device,
                                linear_probe)
