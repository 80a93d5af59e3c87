"""`laser generate`: sample n solutions per problem with their self-reward scores, resumably.

Output: the input records, each with `responses`, `finished`, `reward_token_logps` and
`self_rewarding_scores` (beta_v * (logp - c_ref); None for truncated solutions), the format of
the authors' evaluation scripts, and `response_token_ids` (the sampled ids, EOS included when
finished), which `laser score` re-reads to score exactly what was sampled. Written through
OUT.partial: run the same command again after an interruption and it goes on where it stopped,
with the very records an uninterrupted run writes.

The argument helpers below are shared by `laser score` and `laser calibrate`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from laser_rl.generation import load_tokenizer
from laser_rl.jsonl import PROBLEM_FIELDS, load_records
from laser_rl.models import resolve_model
from laser_rl.scoring import ScoringSettings, scoring_settings
from laser_rl.workflows import Sampling, generate_file


def _number(kind: Callable[[str], float], low: float, low_open: bool, high: float | None = None):
    """An argparse type: `kind` values in [low, high] (or (low, high] when `low_open`)."""

    def parse(text: str) -> float:
        value = kind(text)
        if value < low or (low_open and value == low) or (high is not None and value > high):
            bounds = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high}]'}"
            raise argparse.ArgumentTypeError(f"{text} is not in {bounds}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value: 'x'"
    return parse


positive_int = _number(int, 0, low_open=True)
non_negative_int = _number(int, 0, low_open=False)
positive_float = _number(float, 0, low_open=True)
REWARD_TOKEN_HELP = "z_c, as a token or an id (default: the model folder's laser_config.json, else <|vision_start|>)"


def add_reward_arguments(parser: argparse.ArgumentParser) -> None:
    """--reward-token, --c-ref and --beta-v."""
    parser.add_argument("--reward-token", help=REWARD_TOKEN_HELP)
    parser.add_argument(
        "--c-ref", type=float, help="log pi_ref(z_c | x, y) (default: laser_config.json's, from training or calibrate)"
    )
    parser.add_argument("--beta-v", type=positive_float, help="beta_v (default: laser_config.json's, else 0.1)")


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """--prompt-template and --chat-template / --no-chat-template."""
    parser.add_argument(
        "--prompt-template",
        help="the user turn; {problem} is replaced (default: laser_config.json's, else a step-by-step \\boxed{} one)",
    )
    parser.add_argument(
        "--chat-template",
        action=argparse.BooleanOptionalAction,
        help="wrap the prompt in the tokenizer's chat template (default: laser_config.json's, else when it has one)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """--temperature, --top-p, --top-k, --max-new-tokens, --seed, --batch-size."""
    parser.add_argument(
        "--temperature", type=_number(float, 0, low_open=False), default=1.0, help="0 means greedy (1.0)"
    )
    parser.add_argument("--top-p", type=_number(float, 0, low_open=True, high=1), default=1.0, help="(1.0)")
    parser.add_argument("--top-k", type=non_negative_int, default=0, help="0 means no top-k (0)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=8192, help="(8192, as the authors)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="(0)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="sequences per generate call (8; hundreds with vLLM)"
    )


def settings_for(
    args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase, model: str, need_c_ref: bool = True
) -> ScoringSettings:
    """z_c, c_ref, beta_v and the prompt settings: the flags, else the model folder's, else the defaults."""
    return scoring_settings(
        tokenizer,
        model,
        reward_token=args.reward_token,
        c_ref=getattr(args, "c_ref", None),
        beta_v=getattr(args, "beta_v", None),
        prompt_template=args.prompt_template,
        chat=args.chat_template,
        need_c_ref=need_c_ref,
    )


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


def sampling_from(args: argparse.Namespace) -> Sampling:
    """The sampling flags as `workflows.Sampling`."""
    return Sampling(args.temperature, args.top_p, args.top_k, args.max_new_tokens, args.seed, args.batch_size)


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
