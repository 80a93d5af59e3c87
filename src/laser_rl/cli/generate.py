"""`laser generate`: sample n solutions per problem with their self-reward scores, resumably.

Output: the input records, each with `responses`, `finished`, `reward_token_logps` and
`self_rewarding_scores` (beta_v * (logp - c_ref); None for truncated solutions), the format of
the authors' evaluation scripts, and `response_token_ids` (the sampled ids, EOS included when
finished), which `laser score` re-reads to score exactly what was sampled. Written through
OUT.partial: run the same command again after an interruption and it goes on where it stopped,
with the very records an uninterrupted run writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from laser_rl.cli.options import (
    add_prompt_arguments,
    add_reward_arguments,
    add_sampling_arguments,
    positive_int,
    sampling_from,
    settings_for,
)
from laser_rl.generation import load_tokenizer
from laser_rl.jsonl import PROBLEM_FIELDS, load_records
from laser_rl.models import resolve_model
from laser_rl.scoring import ScoringSettings
from laser_rl.workflows import generate_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="sample solutions and their self-reward scores",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--model", required=True, help="model directory or Hub id")
    parser.add_argument("--data", required=True, help="JSONL file with problem and answer, or a datasets name/folder")
    parser.add_argument("--split", default="test", help="dataset split, for --data that is not a file (test)")
    parser.add_argument("--n", type=positive_int, required=True, help="solutions per problem")
    parser.add_argument("--out", required=True, help="output JSONL file")
    parser.add_argument("--limit", type=positive_int, help="only the first LIMIT problems")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="(hf)")
    add_reward_arguments(parser)
    add_prompt_arguments(parser)
    add_sampling_arguments(parser)


def generate_from_flags(args: argparse.Namespace, out: str | Path) -> tuple[list[dict], ScoringSettings]:
    """`workflows.generate_file` as the flags of `laser generate` (and `laser eval --model`) say."""
    problems = load_records(args.data, PROBLEM_FIELDS, split=args.split, limit=args.limit)
    model = resolve_model(args.model)
    tokenizer = load_tokenizer(model)
    settings = settings_for(args, tokenizer, model)
    sampling = sampling_from(args)
    records = generate_file(model, tokenizer, problems, out, args.n, settings, sampling, args.backend, args.data)
    return records, settings


def run(args: argparse.Namespace) -> None:
    records, settings = generate_from_flags(args, args.out)
    finished = [done for record in records for done in record["finished"]]
    print(
        f"laser generate: {len(records)} problems x {args.n} solutions, {sum(finished)} finished "
        f"({len(finished) - sum(finished)} truncated at {args.max_new_tokens} tokens, no score); "
        f"z_c {settings.reward_token!r}, c_ref {settings.c_ref:.3f}, beta_v {settings.beta_v}; wrote {args.out}",
        file=sys.stderr,
    )
