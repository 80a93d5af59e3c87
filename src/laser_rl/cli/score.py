"""`laser score`: self-reward scores of solutions produced elsewhere (e.g. the authors' eval_math.py).

Each record needs `problem` and `responses` (and may say which are `finished`; truncated ones get
None). Each response is scored by one forward over prompt + response + EOS, the prompt rendered
as `laser generate` renders it, the EOS being the tokenizer's. Adds `reward_token_logps` and
`self_rewarding_scores`; resumable like `laser generate`.
"""

from __future__ import annotations

import argparse

from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from laser_rl.cli.generate import add_prompt_arguments, add_reward_arguments, positive_int, prompts_for
from laser_rl.generation import eos_token_ids, load_model, load_tokenizer
from laser_rl.jsonl import ResumableWriter, check_responses, fingerprint, read_jsonl
from laser_rl.scoring import choose_reward_token, resolve_c_ref, score_solutions, self_reward_score_list


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="add self-reward scores to solutions produced elsewhere", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("input", metavar="IN.jsonl")
    parser.add_argument("output", metavar="OUT.jsonl")
    parser.add_argument("--model", required=True, help="model directory or Hub id")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="sequences per forward (8)")
    add_reward_arguments(parser)
    add_prompt_arguments(parser)


def run(args: argparse.Namespace) -> None:
    records = read_jsonl(args.input, {"problem": str}, check_responses)
    tokenizer = load_tokenizer(args.model)
    token, token_id = choose_reward_token(tokenizer, args.reward_token, args.model)
    c_ref = resolve_c_ref(args.model, token, args.c_ref)
    prompts = prompts_for(args, tokenizer, [record["problem"] for record in records])
    model = load_model(args.model)
    eos = eos_token_ids(model, tokenizer)[0]
    settings = vars(args) | {"input_fingerprint": fingerprint(records), "reward_token_id": token_id, "c_ref": c_ref}
    with ResumableWriter(args.output, settings) as writer:
        for index, (record, prompt) in enumerate(tqdm(list(zip(records, prompts, strict=True)), desc="score")):
            if index not in writer.records:
                logps = _logps(model, tokenizer, record, prompt, token_id, eos, args.batch_size)
                scores = self_reward_score_list(logps, c_ref, args.beta_v)
                writer.write(index, record | {"reward_token_logps": logps, "self_rewarding_scores": scores})
        writer.finish()


def _logps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    record: dict,
    prompt: str,
    token_id: int,
    eos: int,
    batch_size: int,
) -> list[float | None]:
    """log pi(z_c | x, y, EOS) of the record's finished responses, None for the others."""
    finished = record.get("finished") or [True] * len(record["responses"])
    responses = [response for response, done in zip(record["responses"], finished, strict=True) if done]
    logps = iter(score_solutions(model, tokenizer, [prompt] * len(responses), responses, token_id, eos, batch_size))
    return [next(logps) if done else None for done in finished]
