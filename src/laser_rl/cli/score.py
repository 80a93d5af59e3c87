"""`laser score`: self-reward scores of solutions produced elsewhere (e.g. the authors' eval_math.py).

Each record needs `problem` and `responses` (and may say which are `finished`; truncated ones get
None). Each response is scored by one forward over prompt + response + EOS, the prompt rendered
as `laser generate` renders it. Where the record has the sampled ids (`response_token_ids`, as
`laser generate` writes them) they are scored as they are, and the score equals the one read during
generation; responses given only as text are encoded again and the tokenizer's EOS appended, which
with a BPE vocabulary can give other ids than were sampled and so a slightly different score.
Adds `reward_token_logps` and `self_rewarding_scores`; resumable like `laser generate`.
"""

from __future__ import annotations

import argparse
import sys

from laser_rl.cli.options import add_prompt_arguments, add_reward_arguments, positive_int, settings_for
from laser_rl.generation import load_tokenizer
from laser_rl.jsonl import check_responses, read_jsonl
from laser_rl.models import resolve_model
from laser_rl.workflows import score_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="add self-reward scores to solutions produced elsewhere", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", metavar="IN.jsonl")
    parser.add_argument("output", metavar="OUT.jsonl")
    parser.add_argument("--model", required=True, help="model folder, .gguf file, name or Hub id")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="sequences per forward (8)")
    add_reward_arguments(parser)
    add_prompt_arguments(parser)


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"problem": str}, check_responses)
    model = resolve_model(args.model)
    tokenizer = load_tokenizer(model)
    settings = settings_for(args, tokenizer, model)
    scored = score_file(model, tokenizer, records, args.output, settings, args.batch_size)
    count = sum(logp is not None for record in scored for logp in record["reward_token_logps"])
    print(
        f"laser score: {count} finished solutions in {len(records)} records scored; wrote {args.output}",
        file=sys.stderr,
    )
