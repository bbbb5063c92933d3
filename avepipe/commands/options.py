"""Option types that several commands share, defined once."""
from __future__ import annotations

from pathlib import Path

import click

from avepipe.data.ave_metadata import BUNDLED, resolve_annotations, resolve_splits_dir
from avepipe.data.vggsound import PREFIX, VGGSoundFiles
from avepipe.errors import UserError
from avepipe.event.precision import TRAIN_PRECISIONS
from avepipe.models import registry


class _MetadataPath(click.Path):
    """A path, or the name ``ave`` for the official AVE metadata shipped with avepipe."""

    def __init__(self, resolve, **kwargs):
        super().__init__(path_type=Path, **kwargs)
        self._resolve = resolve

    def convert(self, value, param, ctx):
        if str(value) == BUNDLED:
            return self._resolve(value)
        return super().convert(value, param, ctx)


class _AnnotationsPath(_MetadataPath):
    """Also ``vggsound:META.csv,CATEGORIES.txt,LABELS_DIR`` (the VGGSound-AVEL files, data/vggsound.py)."""

    def convert(self, value, param, ctx):
        if isinstance(value, VGGSoundFiles):
            return value
        if str(value).startswith(PREFIX):
            try:
                return VGGSoundFiles.parse(str(value))
            except UserError as err:
                self.fail(str(err), param, ctx)
        return super().convert(value, param, ctx)


ANNOTATIONS = _AnnotationsPath(resolve_annotations, dir_okay=False)
SPLITS = _MetadataPath(resolve_splits_dir, file_okay=False)
TRAIN_PRECISION = click.Choice(TRAIN_PRECISIONS)     # `train` and `compare --precision`

device_option = click.option("--device", help="torch device, e.g. cpu, cuda, cuda:1. [default: cuda if available, "
                                              "else cpu]")


def seed_option(what: str):
    return click.option("--seed", type=int, help=f"Seed of {what}. [default: 0]")


class ModelChoice(click.Choice):
    """The registered model names, read when the command runs (so a model registered later is offered too)."""

    def __init__(self):
        super().__init__([])

    @property
    def choices(self):
        return tuple(registry.names())

    @choices.setter
    def choices(self, value):
        pass    # click.Choice.__init__ assigns it; the registry is the only source


class _ModelHelpOption(click.Option):
    """``--model`` whose help lists each registered model with its one-line summary."""

    def __init__(self, *args, help_suffix: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.help_suffix = help_suffix

    def get_help_record(self, ctx):
        listing = "; ".join(f"{name}: {family.summary}" for name, family in registry.families().items())
        self.help = f"{listing}.{self.help_suffix}"
        return super().get_help_record(ctx)


def model_option(help_suffix: str = ""):
    """``--model``, its choices and help read from the model registry."""
    return click.option("--model", cls=_ModelHelpOption, type=ModelChoice(), default="psp", show_default=True,
                        help_suffix=help_suffix)


def model_build_options(command):
    """One option per build option the registered models declare (``--tau``, ``--cpsp-loss``, ...),
    each saying which models take it; the values reach the command as ``model_options``."""
    for name, (option, takers) in reversed(list(registry.option_families().items())):
        kind = click.Choice(option.choices) if option.choices else option.type
        command = click.option(option.flag, name, type=kind, help=f"{option.help} [{', '.join(takers)}]")(command)
    return command


def given_model_options(params: dict) -> dict:
    """The build options among a command's parameters that the user set."""
    taken = {name: params.pop(name, None) for name in registry.option_families()}
    return {name: value for name, value in taken.items() if value is not None}
