"""`laser grade`: grade each response's last \\boxed{} answer against the record's `answer`.

Adds `pred_answers` (the last boxed answer, None if there is none) and `acc_list` (1.0 or 0.0,
math-verify equivalence) to each record, as the authors' eval_math.py does.
"""

from __future__ import annotations

import argparse

from laser_rl.jsonl import check_responses, read_jsonl, write_jsonl_atomic
from laser_rl.workflows import grade_records


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade", help="grade responses against the gold answers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", metavar="IN.jsonl", help="records with answer and responses")
    parser.add_argument("output", metavar="OUT.jsonl")


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"answer": (str, int, float)}, check_responses)
    write_jsonl_atomic(args.output, grade_records(records))
