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
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from laser_rl.generation import (
    Sample,
    generate_with_scores,
    generate_with_scores_vllm,
    load_model,
    load_tokenizer,
    load_vllm,
)
from laser_rl.jsonl import PROBLEM_FIELDS, ResumableWriter, fingerprint, load_records
from laser_rl.models import resolve_model
from laser_rl.prompts import render_prompts
from laser_rl.scoring import ScoringSettings, scoring_settings, self_reward_score_list
from laser_rl.tokens import check_reward_token_unused


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
REWARD_TOKEN_HELP = (
    "z_c, as a token or an id (default: the model folder's laser_config.json, else <|reward|>, else <|vision_start|>)"
)


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
    args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase, need_c_ref: bool = True
) -> ScoringSettings:
    """z_c, c_ref, beta_v and the prompt settings: the flags, else the model folder's, else the defaults."""
    return scoring_settings(
        tokenizer,
        args.model,
        reward_token=args.reward_token,
        c_ref=getattr(args, "c_ref", None),
        beta_v=getattr(args, "beta_v", None),
        prompt_template=args.prompt_template,
        chat=args.chat_template,
        need_c_ref=need_c_ref,
    )


def prompts_for(settings: ScoringSettings, tokenizer: PreTrainedTokenizerBase, problems: Sequence[str]) -> list[str]:
    """The rendered prompts, as the settings say."""
    return render_prompts(tokenizer, problems, settings.prompt_template, settings.chat)


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


def run(args: argparse.Namespace) -> None:
    problems = load_records(args.data, PROBLEM_FIELDS, split=args.split, limit=args.limit)
    args.model = resolve_model(args.model)
    tokenizer = load_tokenizer(args.model)
    settings = settings_for(args, tokenizer)
    prompts = prompts_for(settings, tokenizer, [problem["problem"] for problem in problems])
    check_reward_token_unused(tokenizer, settings.reward_token_id, prompts, args.data)
    sample = _sampler(args, tokenizer, settings.reward_token_id)
    resume_settings = vars(args) | asdict(settings) | {"data_fingerprint": fingerprint(problems)}
    # Problems are sampled in fixed windows, each seeded from its first row, so a resumed run
    # redoes whole windows and gets the samples an uninterrupted run gets.
    per_window = max(1, args.batch_size // args.n)
    windows = [range(start, min(start + per_window, len(problems))) for start in range(0, len(problems), per_window)]
    with ResumableWriter(args.out, resume_settings) as writer:
        todo = [window for window in windows if any(index not in writer.records for index in window)]
        for window in tqdm(todo, desc="generate", unit="batch"):
            samples = sample(prompts[window.start : window.stop], seed=(args.seed << 32) + window.start * args.n)
            for index, solutions in zip(window, samples, strict=True):
                if index not in writer.records:
                    writer.write(index, _record(problems[index], solutions, settings.c_ref, settings.beta_v))
        writer.finish()
        records = list(writer.records.values())
    finished = [done for record in records for done in record["finished"]]
    print(
        f"laser generate: {len(records)} problems x {args.n} solutions, {sum(finished)} finished "
        f"({len(finished) - sum(finished)} truncated at {args.max_new_tokens} tokens, no score); "
        f"z_c {settings.reward_token!r}, c_ref {settings.c_ref:.3f}, beta_v {settings.beta_v}; wrote {args.out}",
        file=sys.stderr,
    )


def _sampler(
    args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase, token_id: int
) -> Callable[..., list[list[Sample]]]:
    """prompts, seed -> n samples per prompt, with the chosen backend and sampling settings."""
    settings = dict(
        n=args.n,
        reward_token_id=token_id,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
    )
    if args.backend == "vllm":
        return partial(generate_with_scores_vllm, load_vllm(args.model, args.seed), **settings)
    model = load_model(args.model)
    return partial(generate_with_scores, model, tokenizer, batch_size=args.batch_size, progress=False, **settings)


def _record(problem: dict, samples: Sequence[Sample], c_ref: float, beta_v: float) -> dict:
    logps = [sample.reward_token_logp for sample in samples]
    return problem | {
        "responses": [sample.text for sample in samples],
        "finished": [sample.finished for sample in samples],
        "response_token_ids": [sample.token_ids for sample in samples],
        "reward_token_logps": logps,
        "self_rewarding_scores": self_reward_score_list(logps, c_ref, beta_v),
    }
