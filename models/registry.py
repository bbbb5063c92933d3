"""The model registry: every event model family, its settings, options, recipes and checkpoint import.

A family is declared once, in its own module under ``avepipe.models``, as a module-level
``FAMILIES`` tuple of :class:`ModelFamily`. ``train``, ``evaluate``, ``localize``,
``import-checkpoint``, ``compare`` and their ``--help`` read it from here, so adding a
model is one new module (plus its tests and docs). Code outside avepipe (or a test) adds a
family with :func:`register`.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import Tensor, nn

SETTINGS = ("fully", "weakly")
AUTHORS = "authors"


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: optimiser, learning-rate schedule, epochs, batch, clipping.

    The learning rate is ``lr * lr_gamma ** k`` where k counts the ``lr_milestones`` passed
    plus one per full ``lr_period``; both count ``lr_unit``s ("epoch", or "step": optimiser
    steps, for schedulers stepped every iteration). ``source`` cites the authors' code
    (file:line) the numbers come from.
    """

    epochs: int
    batch_size: int
    lr: float
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 1.0
    lr_period: int | None = None
    lr_unit: str = "epoch"
    clip_grad_norm: float | None = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    source: str = ""

    def __post_init__(self):
        if self.lr_unit not in ("epoch", "step"):
            raise ValueError(f"lr_unit must be 'epoch' or 'step', not {self.lr_unit!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (expected one of {', '.join(OPTIMIZERS)})")


OPTIMIZERS = ("adam",)


@dataclass(frozen=True)
class ModelOption:
    """A constructor argument of a family that users may set (``train --NAME``); ``None`` = the model's default."""

    name: str
    type: type
    help: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ModelFamily:
    """One ``--model`` name.

    ``build(setting=..., num_classes=..., **options)`` returns a fresh network whose ``config``
    rebuilds it. ``recipes[name][setting]`` is a :class:`Recipe` (``"authors"`` is the default).
    ``import_state(state, setting)`` maps an authors' state-dict (``module.`` prefixes already
    removed) to this family's keys; keys it leaves that the network lacks are ignored, so
    unused template layers of the authors' modules import without complaint. ``import_options``
    are the options an imported network is built with (e.g. the loss it was trained with).
    ``published``: AVE test segment accuracy (%) per setting as the paper in ``summary`` reports
    it (test-selected, real VGG-19/VGGish features), shown beside avepipe's own figures.
    """

    name: str
    summary: str
    build: Callable[..., nn.Module]
    recipes: Mapping[str, Mapping[str, Recipe]]
    settings: tuple[str, ...] = SETTINGS
    options: tuple[ModelOption, ...] = ()
    import_state: Callable[[dict[str, Tensor], str], dict[str, Tensor]] | None = None
    import_options: Mapping[str, object] = field(default_factory=dict)
    published: Mapping[str, float] = field(default_factory=dict)

    def recipe(self, setting: str, name: str = AUTHORS) -> Recipe:
        try:
            return self.recipes[name][setting]
        except KeyError:
            known = ", ".join(r for r in self.recipes if setting in self.recipes[r])
            raise KeyError(f"no {name!r} recipe for {self.name} {setting} (known: {known})") from None


_FAMILIES: dict[str, ModelFamily] = {}
_discovered = False


def register(family: ModelFamily) -> ModelFamily:
    """Add ``family`` (a later registration of the same name replaces it)."""
    unknown = set(family.settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"{family.name}: unknown settings {sorted(unknown)} (expected {SETTINGS})")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> None:
    _FAMILIES.pop(name, None)


def _discover() -> None:
    """Import every module of ``avepipe.models`` once and register the ``FAMILIES`` it declares."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("avepipe.models")
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"avepipe.models.{info.name}")
        for family in getattr(module, "FAMILIES", ()):
            _FAMILIES.setdefault(family.name, family)


def families() -> Mapping[str, ModelFamily]:
    """Every registered family by name, built-in ones first."""
    _discover()
    return MappingProxyType(_FAMILIES)


def names() -> list[str]:
    return list(families())


def get(name: str) -> ModelFamily:
    try:
        return families()[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(names())})") from None


def option_families() -> dict[str, tuple[ModelOption, list[str]]]:
    """Each option name with its declaration and the families that take it (for the command line)."""
    merged: dict[str, tuple[ModelOption, list[str]]] = {}
    for family in families().values():
        for option in family.options:
            merged.setdefault(option.name, (option, []))[1].append(family.name)
    return merged


def build(model: str, setting: str = "fully", num_classes: int = 28, **options) -> nn.Module:
    """A fresh network of family ``model``; options left out or None take the model's defaults.

    ``build(**net.config)`` rebuilds the same architecture.
    """
    family = get(model)
    if setting not in family.settings:
        raise ValueError(f"{model} has no {setting!r} setting (expected one of {', '.join(family.settings)})")
    allowed = {option.name for option in family.options}
    for name, value in options.items():
        if value is not None and name not in allowed:
            raise ValueError(f"{name} does not apply to model {model!r}")
    given = {name: value for name, value in options.items() if value is not None}
    return family.build(setting=setting, num_classes=num_classes, **given)
