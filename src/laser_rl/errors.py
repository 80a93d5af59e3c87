"""The exceptions the CLI turns into a one-line message and a non-zero exit."""


class LaserInputError(ValueError):
    """Bad user input: a file, line, field or option that cannot be used. The message states the facts.

    `setting`: the setting the input came through (its Python name: "model", "data", "c_ref", ...) when the
    message does not name it; each command words it as its own flag (`laser_rl.cli`).
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class EngineStopped(RuntimeError):
    """The generation engine (vLLM) died mid-run. What was written stays; the same command resumes."""
