"""`laser grade`: grade each response's last \\boxed{} answer against the record's `answer`.

Adds `pred_answers` (the last boxed answer, None if there is none) and `acc_list` (1.0 or 0.0,
math-verify equivalence) to each record, as the authors' eval_math.py does. `--verifier` grades with
another verifier of `laser train --reward` (choice, exact, module:function; see `laser_rl.verifiers`):
`pred_answers` is then the answer it reads, and `acc_list` its rewards in [0, 1], null where it
cannot judge.
"""

from __future__ import annotations

import argparse

from laser_rl.jsonl import check_responses, read_jsonl, write_jsonl_atomic
from laser_rl.workflows import verify_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="grade responses against the gold answers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", metavar="IN.jsonl", help="records with answer and responses")
    parser.add_argument("output", metavar="OUT.jsonl")
    parser.add_argument(
        "--verifier",
        default="math",
        metavar="NAME",
        help="math (default), choice, exact, or module:function, as `laser train --reward` takes",
    )


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"answer": (str, int, float)}, check_responses)
    write_jsonl_atomic(args.output, verify_records(records, args.verifier))
