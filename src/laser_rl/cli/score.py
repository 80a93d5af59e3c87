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
from dataclasses import asdict

from tqdm.auto import tqdm

from laser_rl.cli.generate import add_prompt_arguments, add_reward_arguments, positive_int, prompts_for, settings_for
from laser_rl.generation import eos_token_ids, load_model, load_tokenizer
from laser_rl.jsonl import ResumableWriter, check_responses, fingerprint, read_jsonl
from laser_rl.models import resolve_model
from laser_rl.scoring import record_logps, self_reward_score_list


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
    args.model = resolve_model(args.model)
    tokenizer = load_tokenizer(args.model)
    settings = settings_for(args, tokenizer)
    prompts = prompts_for(settings, tokenizer, [record["problem"] for record in records])
    model = load_model(args.model)
    eos = eos_token_ids(model, tokenizer)[0]
    resume_settings = vars(args) | asdict(settings) | {"input_fingerprint": fingerprint(records)}
    with ResumableWriter(args.output, resume_settings) as writer:
        for index, (record, prompt) in enumerate(tqdm(list(zip(records, prompts, strict=True)), desc="score")):
            if index not in writer.records:
                logps = record_logps(model, tokenizer, record, prompt, settings.reward_token_id, eos, args.batch_size)
                scores = self_reward_score_list(logps, settings.c_ref, settings.beta_v)
                writer.write(index, record | {"reward_token_logps": logps, "self_rewarding_scores": scores})
        writer.finish()
    scored = sum(logp is not None for record in writer.records.values() for logp in record["reward_token_logps"])
    print(
        f"laser score: {scored} finished solutions in {len(records)} records scored; wrote {args.output}",
        file=sys.stderr,
    )
