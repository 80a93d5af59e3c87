"""How far a score read from a response's text is from the score of the ids that were sampled.

`laser score` scores a record's `response_token_ids` when it has them (what `laser generate` writes),
else the responses' text, encoded again with the tokenizer's EOS appended. This script takes a file
that `laser generate` wrote and, for every finished response, compares the two: how often encoding
the text gives other ids, and how much log pi(z_c | x, y, EOS) moves when it does.

    python -m benchmarks.score_from_text --model DIR --generated gen.jsonl
"""

from __future__ import annotations

import argparse
import statistics

from laser_rl.generation import eos_token_ids, load_model, load_tokenizer
from laser_rl.jsonl import check_responses, read_jsonl
from laser_rl.models import resolve_model
from laser_rl.prompts import render_prompts
from laser_rl.scoring import score_solutions, scoring_settings, solution_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model that generated the file")
    parser.add_argument("--generated", required=True, help="a JSONL file written by `laser generate`")
    args = parser.parse_args()
    model_dir = resolve_model(args.model)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
    settings = scoring_settings(tokenizer, model_dir, need_c_ref=False)
    eos = eos_token_ids(model, tokenizer)[0]
    prompts, sampled, texts = [], [], []
    for record in read_jsonl(args.generated, {"problem": str}, check_responses):
        if "response_token_ids" not in record:
            raise SystemExit(f"{args.generated}: no response_token_ids; write it with `laser generate`")
        prompt = render_prompts(tokenizer, [record["problem"]], settings.prompt_template, settings.chat)[0]
        for text, ids, done in zip(record["responses"], record["response_token_ids"], record["finished"], strict=True):
            if done:
                prompts.append(prompt)
                sampled.append(ids)
                texts.append(text)
    from_ids = score_solutions(model, tokenizer, prompts, sampled, settings.reward_token_id, eos)
    from_text = score_solutions(model, tokenizer, prompts, texts, settings.reward_token_id, eos)
    differ = [
        k
        for k, (prompt, ids, text) in enumerate(zip(prompts, sampled, texts, strict=True))
        if solution_ids(tokenizer, prompt, ids, eos) != solution_ids(tokenizer, prompt, text, eos)
    ]
    gaps = [abs(from_ids[k] - from_text[k]) for k in differ]
    print(f"{len(prompts)} finished responses; re-encoding the text gives other ids for {len(differ)}")
    if gaps:
        print(
            f"|log pi(z_c) from text - from ids| where they differ: median {statistics.median(gaps):.3f}, "
            f"max {max(gaps):.3f} nats; times beta_v = 0.1 in the score: max {0.1 * max(gaps):.3f}"
        )


if __name__ == "__main__":
    main()
