"""The one exception the CLI turns into a one-line message and a non-zero exit."""


class LaserInputError(ValueError):
    """Bad user input: a file, line, field or option that cannot be used. The message names it."""
