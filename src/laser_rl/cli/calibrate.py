"""`laser calibrate`: measure c_ref, or rank candidate reward tokens.

c_ref is the mean of log pi_ref(z_c | x, y, EOS) over solutions of the reference model (the model
before LaSeR training); the paper measured it on 300 pairs. The solutions are the records'
`responses` where they have them, else --n samples of the model per problem; scores are read by
one forward over each solution, for one token or for every candidate at once. --save stores the
token, its c_ref and the prompt settings in the model folder's laser_config.json, where `laser
train`, `generate`, `score` and `eval` find them. c_ref depends on the prompts: calibrate on the
prompts you train on.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from laser_rl.cli.options import (
    REWARD_TOKEN_HELP,
    add_prompt_arguments,
    add_sampling_arguments,
    positive_float,
    positive_int,
    sampling_from,
    settings_for,
)
from laser_rl.errors import LaserInputError
from laser_rl.generation import load_model, load_tokenizer
from laser_rl.jsonl import check_responses, load_records
from laser_rl.model_settings import ModelSettings
from laser_rl.models import resolve_model
from laser_rl.prompts import prompt_settings, record_prompts
from laser_rl.scoring import TokenStats, candidate_reward_tokens, eos_logprobs, suggest_reward_tokens, token_stats
from laser_rl.tokens import check_reward_token_unused
from laser_rl.workflows import calibration_solutions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="measure c_ref, or rank candidate reward tokens", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="the reference model: folder, .gguf file, name or Hub id")
    parser.add_argument("--data", required=True, help="JSONL file with problem (and maybe responses), or a dataset")
    parser.add_argument("--split", default="test", help="dataset split, for --data that is not a file (test)")
    parser.add_argument("--limit", type=positive_int, help="only the first LIMIT problems")
    parser.add_argument("--n", type=positive_int, default=1, help="samples per problem without responses (1)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--reward-token", help=REWARD_TOKEN_HELP)
    which.add_argument("--suggest", action="store_true", help="rank the unused special tokens instead")
    parser.add_argument("--beta-v", type=positive_float, default=0.1, help="to check that Z(x, y) is about 1 (0.1)")
    parser.set_defaults(c_ref=None)
    parser.add_argument("--save", action="store_true", help="store the (best) token and c_ref in laser_config.json")
    add_prompt_arguments(parser)
    add_sampling_arguments(parser)


def run(args: argparse.Namespace) -> None:
    records = load_records(args.data, {"problem": str}, _check_responses_if_any, split=args.split, limit=args.limit)
    model_dir = resolve_model(args.model)
    tokenizer = load_tokenizer(model_dir)
    template, chat = prompt_settings(
        tokenizer, ModelSettings.read(model_dir), args.prompt_template, args.chat_template
    )
    prompts = record_prompts(tokenizer, records, template, chat)
    if args.suggest:
        # Sampling keeps one unused token out, as it keeps z_c out; any of the candidates does.
        keep_out = next(iter(candidate_reward_tokens(tokenizer, prompts).values()))
    else:
        settings = settings_for(args, tokenizer, model_dir, need_c_ref=False)
        reward_token, keep_out = settings.reward_token, settings.reward_token_id
        check_reward_token_unused(tokenizer, keep_out, prompts, args.data)
    model = load_model(model_dir)
    sampling = sampling_from(args)
    sequences, responses, truncated = calibration_solutions(
        model, tokenizer, records, prompts, keep_out, args.n, sampling
    )
    if truncated:
        print(f"laser calibrate: left out {truncated} truncated solutions (no EOS, so no score)", file=sys.stderr)
    if not sequences:
        raise LaserInputError(f"--data {args.data}: no finished solution to calibrate on; raise --max-new-tokens")
    if args.suggest:
        ranking = suggest_reward_tokens(model, tokenizer, sequences, [*prompts, *responses], args.batch_size)
        _print_ranking(ranking)
        best = ranking[0]
    else:
        logps = eos_logprobs(model, tokenizer, sequences, [keep_out], args.batch_size)[:, 0]
        best = token_stats(reward_token, keep_out, logps)
    print(
        f"{best.token} (id {best.token_id}): c_ref = {best.mean:.4f}, std {best.std:.4f} over {best.count} solutions"
    )
    bound = best.upper + 1 / args.beta_v
    if bound > -5:  # Z(x, y) - 1 ~ pi_ref(z_c) e^(1/beta_v) must be small: e^-13 in the paper, e^-5 at most
        print(f"warning: exp(c_ref + 2 std + 1/beta_v) = {math.exp(bound):.3g} is not << 1, so Z(x, y) ~ 1 fails")
    if args.save:
        measured = ModelSettings(
            reward_token=best.token,
            reward_token_id=best.token_id,
            c_ref=best.mean,
            c_ref_std=best.std,
            c_ref_solutions=best.count,
            prompt_template=template,
            chat=chat,
        )
        print(f"wrote {measured.write(model_dir)}")


def _check_responses_if_any(record: dict) -> str | None:
    return check_responses(record) if "responses" in record else None


def _print_ranking(ranking: Sequence[TokenStats]) -> None:
    """The candidates, best first: small and stable log-probs (mean + 2 std) rank first."""
    width = max(len(stat.token) for stat in ranking)
    print(f"{'rank':>4}  {'token':<{width}}  {'id':>7}  {'mean':>9}  {'std':>7}  {'mean+2std':>9}")
    for rank, stat in enumerate(ranking, start=1):
        numbers = f"{stat.mean:>9.3f}  {stat.std:>7.3f}  {stat.upper:>9.3f}"
        print(f"{rank:>4}  {stat.token:<{width}}  {stat.token_id:>7}  {numbers}")
    print(f"use: --reward-token '{ranking[0].token}' (c_ref below), or --save to store both with the model")
