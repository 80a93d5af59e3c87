"""The exceptions the CLI turns into a one-line message and a non-zero exit."""


class LaserInputError(ValueError):
    """Bad user input: a file, line, field or option that cannot be used. The message names it."""


class EngineStopped(RuntimeError):
    """The generation engine (vLLM) died mid-run. What was written stays; the same command resumes."""
