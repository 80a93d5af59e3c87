"""The options several `laser` commands share (model scoring settings, prompts, sampling) and their checks:
one place for the flags' names, types, defaults and help."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from transformers import PreTrainedTokenizerBase

from laser_rl.scoring import ScoringSettings, scoring_settings
from laser_rl.workflows import Sampling


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


def sampling_from(args: argparse.Namespace) -> Sampling:
    """The sampling flags as `workflows.Sampling`."""
    return Sampling(args.temperature, args.top_p, args.top_k, args.max_new_tokens, args.seed, args.batch_size)
