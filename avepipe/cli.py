"""The ``avepipe`` command: a click group whose sub-commands live in ``avepipe.commands``."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from avepipe import __version__
from avepipe.commands.base import Group

if not sys.stderr.isatty():
    # Redirected to a log: one progress line every 30 s, not ten a second. tqdm reads TQDM_* at import,
    # which the sub-commands do after this; a value the user set wins.
    os.environ.setdefault("TQDM_MININTERVAL", "30")

# (module, attribute) of each sub-command, imported lazily so `avepipe --help`
# stays fast and one area's import error cannot hide the others.
_COMMANDS = {
    "extract": ("avepipe.commands.extract", "extract"),
    "cache": ("avepipe.commands.cache", "cache"),
    "synth": ("avepipe.commands.synth", "synth"),
    "train": ("avepipe.commands.train", "train"),
    "evaluate": ("avepipe.commands.evaluate", "evaluate"),
    "compare": ("avepipe.commands.compare", "compare"),
    "source": ("avepipe.commands.source", "source"),
    "import-checkpoint": ("avepipe.commands.import_checkpoint", "import_checkpoint"),
    "localize": ("avepipe.commands.localize", "localize"),
    "doctor": ("avepipe.commands.doctor", "doctor"),
}


class _LazyGroup(Group):
    def list_commands(self, ctx):
        return sorted(name for name, (mod, _) in _COMMANDS.items() if importlib.util.find_spec(mod))

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name]
        if importlib.util.find_spec(module) is None:
            return None
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="avepipe")
def main():
    """Audio-visual event localisation: extract features, train PSP/CPSP, localise events."""


if __name__ == "__main__":
    main()
