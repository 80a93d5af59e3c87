"""`laser grade`: grade each response's last \\boxed{} answer against the record's `answer`.

Adds `pred_answers` (the last boxed answer, None if there is none) and `acc_list` (1.0 or 0.0,
math-verify equivalence) to each record, as the authors' eval_math.py does. `--verifier` grades with
another verifier of `laser train --reward` (choice, exact, judge, module:function; see
`laser_rl.verifiers`): `pred_answers` is then the answer it reads, and `acc_list` its rewards in [0, 1],
null where it cannot judge. `--verifier judge` asks an LLM judge (`--judge-url`, `--judge-model`, ...;
see `laser_rl.llm_judge`) and caches its judgements in OUT.jsonl.judge_cache.jsonl, so that a grading
run made again asks nothing twice.
"""

from __future__ import annotations

import argparse
import dataclasses

from laser_rl.jsonl import check_responses, read_jsonl, write_jsonl_atomic
from laser_rl.llm_judge import JudgeArguments
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
        help="math (default), choice, exact, judge, or module:function, as `laser train --reward` takes",
    )
    judge = parser.add_argument_group("judge", "the LLM judge of --verifier judge")
    for option in dataclasses.fields(JudgeArguments):
        judge.add_argument(
            "--" + option.name.replace("_", "-"),
            type=type(option.default) if option.default is not None else str,
            default=option.default,
            help=option.metadata["help"],
        )


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"answer": (str, int, float)}, check_responses)
    names = [option.name for option in dataclasses.fields(JudgeArguments)]
    judge = JudgeArguments(**{name: getattr(args, name) for name in names})
    judge.judge_cache = judge.judge_cache or f"{args.output}.judge_cache.jsonl"
    write_jsonl_atomic(args.output, verify_records(records, args.verifier, judge))
