"""The one exception type whose message is shown to users as-is, without a traceback."""


class UserError(Exception):
    """Bad input or environment, explained in one line that names the file and the problem."""
