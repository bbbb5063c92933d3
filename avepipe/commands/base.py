"""The classes every ``avepipe`` command is made of: a ``UserError`` ends it as one line and exit status 2.

Handled on each command (not only on the top-level group), so a sub-command invoked on
its own, as the tests do, behaves exactly as under ``avepipe``.
"""
from __future__ import annotations

import click

from avepipe.errors import UserError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


class _ReportsUserErrors:
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            click.echo(f"error: {_in_command_terms(error, ctx)}", err=True)
            ctx.exit(2)


def _in_command_terms(error: UserError, ctx: click.Context) -> str:
    """The message naming the option that takes ``error.argument``, when this command has one."""
    options = [param.opts[-1] for param in ctx.command.params
               if error.argument is not None and param.name == error.argument and param.opts]
    return error.naming(options[0]) if options else str(error)


class Command(_ReportsUserErrors, click.Command):
    """A command: ``error: <message>`` on stderr and exit status 2 for a ``UserError``, never a traceback."""

    def __init__(self, *args, context_settings: dict | None = None, **kwargs):
        super().__init__(*args, context_settings={**CONTEXT_SETTINGS, **(context_settings or {})}, **kwargs)


class Group(_ReportsUserErrors, click.Group):
    """A command group whose sub-commands (and sub-groups) are ``Command``s (and ``Group``s)."""

    command_class = Command
    group_class = type

    def __init__(self, *args, context_settings: dict | None = None, **kwargs):
        super().__init__(*args, context_settings={**CONTEXT_SETTINGS, **(context_settings or {})}, **kwargs)
