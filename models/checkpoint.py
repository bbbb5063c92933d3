"""Checkpoints as data only: ``model.safetensors`` + ``config.json``; never unpickled.

One format for both tasks: ``"task": "event"`` (PSP/CPSP, ``models.build_model``) or
``"source"`` (the FNAC sound-source localiser, ``models.fnac.SoundSourceLocalizer``).
Loading checks the task first, so a checkpoint given to the wrong command says so.
Checkpoints written before the task field existed are event checkpoints; CPSP checkpoints
written before the ``cpsp_loss`` field existed were trained with the corrected loss (the only
one avepipe had), and load as such.

Also converts the authors' released ``.pth`` state-dicts of every registered model (loaded
with ``weights_only=True``, which refuses code) into our networks.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from avepipe import __version__
from avepipe.errors import UserError
from avepipe.extract.provenance import ExtractorConfig
from avepipe.models import registry

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "avepipe-checkpoint/1"
TASKS = {"event": "an event (PSP/CPSP)", "source": "a sound-source"}
EVALUATE_COMMANDS = {"event": "avepipe evaluate", "source": "avepipe source evaluate"}


def tau_as_json(tau: float | None) -> float | str | None:
    """Strict JSON has no Infinity: tau = +-inf (Table 1's ablations) is written "inf"/"-inf", which float() reads."""
    return str(tau) if tau is not None and math.isinf(tau) else tau


def build_task_model(task: str, config: dict) -> nn.Module:
    """The network a checkpoint of ``task`` holds, rebuilt from its recorded config."""
    if task == "source":
        from avepipe.models.fnac import SoundSourceLocalizer

        return SoundSourceLocalizer(**config)
    return registry.build(**config)


@dataclass
class CheckpointInfo:
    """Everything a checkpoint records besides the weights."""

    model_config: dict
    class_names: list[str]
    extractor: ExtractorConfig
    extra: dict
    task: str = "event"


def save_checkpoint(directory: str | Path, model: nn.Module, class_names: list[str],
                    extractor: ExtractorConfig, extra: dict | None = None, task: str = "event") -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed).

    ``class_names`` are the event classes followed by the background class (C+1 names);
    a sound-source model (``task="source"``) has none.
    """
    if task not in TASKS:
        raise ValueError(f"unknown checkpoint task {task!r} (expected one of {', '.join(TASKS)})")
    expected = model.config["num_classes"] + 1 if task == "event" else 0
    if len(class_names) != expected:
        raise ValueError(f"{len(class_names)} class names for a model with {expected} outputs "
                         "(event classes followed by background)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    model_config = dict(model.config)
    if "tau" in model_config:
        model_config["tau"] = tau_as_json(model_config["tau"])
    config = {
        "format": FORMAT,
        "task": task,
        "avepipe_version": __version__,
        "model": model_config,
        "class_names": list(class_names),
        "extractor": json.loads(extractor.to_json()),
        "extra": extra or {},
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


def read_checkpoint_info(directory: str | Path) -> CheckpointInfo:
    """Parse ``config.json`` only (cheap: for checking provenance before loading weights)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (is {directory} an avepipe checkpoint directory?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        model_config = dict(config["model"])
        if model_config.get("model") == "cpsp":
            model_config.setdefault("cpsp_loss", "corrected")    # written before the field existed
        return CheckpointInfo(model_config=model_config, class_names=list(config["class_names"]),
                              extractor=ExtractorConfig.from_json(json.dumps(config["extractor"])),
                              extra=dict(config.get("extra") or {}), task=config.get("task", "event"))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a valid avepipe checkpoint config ({exc})") from None


def check_task(info: CheckpointInfo, task: str, directory: str | Path, hint: str | None = None) -> None:
    """UserError when the checkpoint holds the other task's model; ``hint`` says what to do instead."""
    if info.task not in TASKS:
        raise UserError(f"{Path(directory) / CONFIG_FILE}: unknown task {info.task!r}")
    if info.task != task:
        hint = hint or f"use `{EVALUATE_COMMANDS[info.task]}`"
        raise UserError(f"{directory}: this is {TASKS[info.task]} checkpoint, not {TASKS[task]} one; {hint}")


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu", task: str = "event",
                    hint: str | None = None) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (eval mode, on ``device``).

    A checkpoint of another ``task`` is refused before anything else is read (``hint`` ends
    that message; by default it names the command that scores such a checkpoint).
    """
    info = read_checkpoint_info(directory)
    check_task(info, task, directory, hint)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise UserError(f"{weights}: not found")
    try:
        model = build_task_model(task, info.model_config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{Path(directory) / CONFIG_FILE}: bad model config ({exc})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{weights}: not a safetensors file ({exc})") from None
    _check_state(state, model, weights)
    model.load_state_dict(state)
    return model.to(device).eval(), info


def _check_state(state: dict[str, torch.Tensor], model: nn.Module, source: Path) -> None:
    """One-line UserError naming every missing or mis-shaped key (expected vs got)."""
    problems = []
    for name, reference in model.state_dict().items():
        if name not in state:
            problems.append(f"missing key {name!r} (expected shape {tuple(reference.shape)})")
        elif tuple(state[name].shape) != tuple(reference.shape):
            problems.append(f"key {name!r} has shape {tuple(state[name].shape)}, expected {tuple(reference.shape)}")
    if problems:
        raise UserError(f"{source}: " + "; ".join(problems))


def _unwrap_authors_state(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    """Accept a bare state-dict, one wrapped in {'state_dict': ...}, and DataParallel 'module.' prefixes."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a state-dict (a dict of tensors), found {type(loaded).__name__}")
    state = {}
    for key, value in loaded.items():
        if isinstance(value, torch.Tensor):
            state[key[len("module."):] if key.startswith("module.") else key] = value
    return state


def import_authors_state_dict(path: str | Path, setting: str, model_name: str = "psp",
                              num_classes: int = 28) -> nn.Module:
    """A ``model_name`` network (its default options for ``setting``) holding the authors' weights in ``path``.

    ``num_classes`` event classes (AVE's 28 by default); a file with another count fails the shape check.
    The family's ``import_state`` maps their keys to ours; keys our network does not have are
    ignored (layers their code saves but never uses); a missing or mis-shaped key is a UserError
    naming it. Weights are cast to float32.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-.pth or code-carrying file
        raise UserError(f"{path}: cannot be read as a weights-only PyTorch state-dict ({exc})") from None
    family = registry.get(model_name)
    state = _unwrap_authors_state(loaded, path)
    if family.import_state is not None:
        try:
            state = family.import_state(state, setting)
        except ValueError as exc:
            raise UserError(f"{path}: {exc}") from None
    model = registry.build(model_name, setting, num_classes=num_classes, **family.import_options)
    _check_state(state, model, path)
    model.load_state_dict({name: state[name].to(torch.float32) for name in model.state_dict()})
    return model.eval()
