"""The one exception type that means "the user gave us something wrong".

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2;
anything else is a bug in rltk and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a config key, a data row, a model spec, a reward path."""

    exit_code = 2
