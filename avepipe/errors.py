"""The one exception type whose message is shown to users as-is, without a traceback."""
from __future__ import annotations

ARGUMENT = "{argument}"   # where a message names the keyword argument it is about


class UserError(Exception):
    """Bad input or environment, explained in one line that names the file and the problem.

    A message about one keyword argument (``argument="vgg_weights"``) writes it as ``{argument}``:
    the library's message names the argument, and a command that takes it as an option names
    the option instead (``commands/base.py``), so library messages never name a command-line flag.
    """

    def __init__(self, message: str = "", argument: str | None = None):
        self.template, self.argument = message, argument
        super().__init__(self.naming(argument) if argument else message)

    def naming(self, name: str) -> str:
        """The message with ``name`` where it names its argument."""
        return self.template.replace(ARGUMENT, name)
