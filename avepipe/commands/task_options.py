"""Commands serving two tasks (``--task event|source``) refuse the other task's options."""
from __future__ import annotations

from collections.abc import Collection

import click

from avepipe.errors import UserError


def refuse_options_outside(ctx: click.Context, allowed: Collection[str], task: str) -> None:
    """An option given on the command line that ``--task TASK`` does not read is an error, not silently ignored."""
    given = [p for p in ctx.command.params
             if ctx.get_parameter_source(p.name) not in (click.core.ParameterSource.DEFAULT, None)]
    wrong = [max(p.opts, key=len) for p in given if p.name not in allowed]
    if wrong:
        raise UserError(f"{', '.join(wrong)}: not an option of --task {task}")


def all_options_but(ctx: click.Context, excluded: Collection[str]) -> set[str]:
    """The names of the command's parameters without ``excluded`` (the other task's own options)."""
    return {p.name for p in ctx.command.params} - set(excluded)
