"""`laser eval`: metrics, inference-time scaling curves and plots of a graded, scored JSONL file.

`laser eval FILE.jsonl --out DIR` reports on records that have `pred_answers`, `acc_list` and
`self_rewarding_scores` (from `laser generate` + `laser grade`, or the authors' scripts + `laser score`).
`laser eval --model M --data D --n K --out DIR` first generates into DIR/generated.jsonl (resumable, whatever
eval's own flags such as --num-subsets say) and grades into DIR/graded.jsonl, then reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from laser_rl.cli import generate, options
from laser_rl.errors import LaserInputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="metrics, scaling curves and plots (optionally generate + grade first)", description=__doc__
    )
    parser.add_argument("input", metavar="FILE.jsonl", nargs="?", help="graded, scored records")
    parser.add_argument("--out", required=True, type=Path, help="report directory")
    parser.add_argument("--num-subsets", type=options.positive_int, default=100, help="subsets per N (100)")
    parser.add_argument(
        "--model", help="generate with this model first (folder, .gguf, name or Hub id), with --data and --n"
    )
    parser.add_argument("--data", help="problems to generate for")
    parser.add_argument("--split", default="test", help="dataset split, for --data that is not a file (test)")
    parser.add_argument("--n", type=options.positive_int, help="solutions per problem")
    parser.add_argument("--limit", type=options.positive_int, help="only the first LIMIT problems")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="(hf)")
    options.add_reward_arguments(parser)
    options.add_prompt_arguments(parser)
    options.add_sampling_arguments(parser)


def run(args: argparse.Namespace) -> None:
    from laser_rl.grading import MathGrader
    from laser_rl.jsonl import check_responses, read_jsonl, write_jsonl_atomic
    from laser_rl.report import build_report, format_number
    from laser_rl.workflows import grade_records

    if args.model:
        if args.input or not (args.data and args.n):
            raise LaserInputError("--model needs --data and --n, and no FILE.jsonl")
        args.out.mkdir(parents=True, exist_ok=True)
        generated, _ = generate.generate_from_flags(args, args.out / "generated.jsonl")
        args.input = args.out / "graded.jsonl"
        write_jsonl_atomic(args.input, grade_records(generated))
    elif not args.input:
        raise LaserInputError("give FILE.jsonl, or --model, --data and --n to generate one")
    records = read_jsonl(
        args.input, {"answer": (str, int, float), "pred_answers": list, "acc_list": list}, check_responses
    )
    with MathGrader() as grader:  # answers are grouped for voting by mathematical equivalence
        results = build_report(
            records, args.out, equivalent=grader.equivalent, num_subsets=args.num_subsets, seed=args.seed
        )
    verification = results["self_verification"]["all"]
    print(
        f"laser eval: {results['num_problems']} problems, accuracy {results['accuracy']:.3f}, "
        f"self-verification F1 {format_number(verification['f1'])}, AUROC {format_number(verification['auroc'])}; "
        f"report in {args.out / 'report.md'}"
    )
