"""`laser`: one command line for training, generation, grading, scoring, evaluation and the demo.

Each subcommand lives in its own module of this package with `add_parser(subparsers)` and
`run(args) -> None`. Bad input raises `LaserInputError`; it is printed as one line and the
process exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from laser_rl.errors import EngineStopped, LaserInputError

COMMANDS = ["train", "generate", "grade", "score", "eval", "calibrate", "models", "demo"]


# `laser train`'s names (its config fields) for the settings the library's errors name
_TRAIN_SETTINGS = {"model": "model_name_or_path", "data": "dataset"}


def worded(error: LaserInputError, command: str) -> str:
    """The error as one line for `command`'s user: the setting it came through named as that command's flag
    (`--c-ref` for the inference commands, the config field `c_ref` for `laser train`)."""
    if error.setting is None:
        return str(error)
    if command == "train":
        return f"{_TRAIN_SETTINGS.get(error.setting, error.setting)}: {error}"
    return f"--{error.setting.replace('_', '-')}: {error}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="laser", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name: importlib.import_module(f"laser_rl.cli.{name}") for name in COMMANDS}
    for module in modules.values():
        module.add_parser(subparsers)
    if argv and argv[0] == "train":  # TRL's parser owns every flag of `laser train`
        args = argparse.Namespace(command="train", train_argv=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        modules[args.command].run(args)
    except LaserInputError as error:
        print(f"laser {args.command}: error: {worded(error, args.command)}", file=sys.stderr)
        sys.exit(2)
    except EngineStopped as error:
        print(f"laser {args.command}: {error}; run the same command again to resume", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"laser {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
