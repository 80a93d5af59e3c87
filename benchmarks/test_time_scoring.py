"""Test-time cost of a solution's self-verification score, relative to generating the solution.

Same model, prompts, seed and forced solution length L (see `common.ForcedLengths`), B rows at once:
- generate: plain `model.generate` (sampling at temperature 1), the baseline;
- in-pass: `generation.generate_with_scores`, which reads the score one decoding step after the EOS;
- laser score: `scoring.score_solutions` afterwards (a prefill of prompt + solution + EOS, last logits only);
- authors: their rescoring, a second prefill of prompt + solution + EOS + z_c with the logits and
  log-softmax of every position (vLLM `prompt_logprobs` in their calculate_self_rewarding_scores.py);
- judge: generate-then-verify, the prompt + solution + a question asking whether it is correct, and
  JUDGE_TOKENS generated tokens.
The in-pass column is a ratio to generation (goal <= 1.02), next to the ratio its design predicts
(see `common.predicted_in_pass_ratio`) and to "generate again / generate", the same generation timed
twice in each repetition: the noise floor of the ratios on this machine (an A/A control). The model's
forwards are counted once per variant (in-pass: L + 1, generate: L). The other columns are the extra
cost per solution as a fraction of generating it.

    python -m benchmarks.test_time_scoring [--quick] [--models tiny mid smollm2]
"""

from __future__ import annotations

import statistics

import torch
from transformers import GenerationConfig

from benchmarks.common import (
    Bench,
    ForcedLengths,
    argument_parser,
    build_bench,
    describe,
    format_checks,
    interleaved,
    median_ms,
    per_step_overhead,
    plain_sampling_config,
    predicted_in_pass_ratio,
    print_table,
    prompts,
    ratio,
    setup,
)
from laser_rl.generation import generate_with_scores
from laser_rl.scoring import score_solutions

JUDGE_PROMPT = "\nIs the solution above correct? Answer yes or no.\nAnswer:"
JUDGE_TOKENS = 8
HEADERS = [
    "model", "L", "B", "generate (ms)", "in-pass / generate", "predicted", "generate again / generate",
    "laser score", "authors", "judge",
]  # fmt: skip


def left_padded(bench: Bench, sequences: list[list[int]]) -> dict[str, torch.Tensor]:
    """A left-padded batch with the position ids `generate` would use."""
    batch = bench.tokenizer.pad({"input_ids": sequences}, padding_side="left", return_tensors="pt")
    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    return batch


def forwards(model: torch.nn.Module, run) -> int:
    """How many forwards of `model` run() makes."""
    count = 0

    def hook(*args) -> None:
        nonlocal count
        count += 1

    handle = model.register_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return count


@torch.no_grad()
def authors_rescoring(bench: Bench, sequences: list[list[int]]) -> torch.Tensor:
    """log pi(z_c | x, y, EOS) from a full-logits prefill of prompt + solution + EOS + z_c, as vLLM's
    prompt_logprobs computes it: the log-softmax of every position, then the z_c entry of the last."""
    batch = left_padded(bench, [ids + [bench.reward_token_id] for ids in sequences])
    logits = bench.model(**batch).logits
    logps = logits.float().log_softmax(-1)[:, :-1].gather(2, batch["input_ids"][:, 1:, None]).squeeze(2)
    return logps[:, -1]


@torch.no_grad()
def judge(bench: Bench, texts: list[str]) -> torch.Tensor:
    """Generate-then-verify: JUDGE_TOKENS tokens after a question about the solution; returns them."""
    texts = [text + JUDGE_PROMPT for text in texts]
    batch = bench.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
    config = GenerationConfig(
        do_sample=False,
        min_new_tokens=JUDGE_TOKENS,
        max_new_tokens=JUDGE_TOKENS,
        eos_token_id=bench.eos_id,
        pad_token_id=bench.tokenizer.pad_token_id,
    )
    return bench.model.generate(**batch, generation_config=config)[:, batch["input_ids"].shape[1] :]


def measure(bench: Bench, length: int, batch_size: int, repeats: int) -> tuple[list[object], dict]:
    """One table row: the costs of each variant for B solutions of L tokens."""
    tokenizer, model = bench.tokenizer, bench.model
    texts = prompts(batch_size)
    inputs = tokenizer(texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
    config = plain_sampling_config(bench, length)

    @torch.no_grad()
    def generate() -> torch.Tensor:
        torch.manual_seed(0)
        with ForcedLengths(bench, [length]):
            return model.generate(**inputs, generation_config=config)

    def in_pass() -> list:
        with ForcedLengths(bench, [length]):
            return generate_with_scores(
                model, tokenizer, texts, 1, bench.reward_token_id, top_k=0, max_new_tokens=length,
                seed=0, batch_size=batch_size, progress=False,
            )  # fmt: skip

    # The solutions every after-the-fact variant scores: the baseline's own output.
    prompt_length = inputs["input_ids"].shape[1]
    completions = generate()[:, prompt_length:]
    assert (completions[:, length - 1] == bench.eos_id).all() and completions.shape[1] == length
    responses = tokenizer.batch_decode(completions[:, :-1])  # the judge reads text
    sampled_ids = completions.tolist()  # scored as sampled (EOS included), as `laser score` scores them
    sequences = [
        ids + completion
        for ids, completion in zip(
            tokenizer(texts, add_special_tokens=False).input_ids, completions.tolist(), strict=True
        )
    ]

    samples = [group[0] for group in in_pass()]
    in_pass_logps = torch.tensor([sample.reward_token_logp for sample in samples])
    after_logps = torch.tensor(
        score_solutions(model, tokenizer, texts, sampled_ids, bench.reward_token_id, bench.eos_id, batch_size)
    )
    judge_texts = [text + response for text, response in zip(texts, responses, strict=True)]
    checks = {  # these runs double as the warm-up of every variant
        "finished": sum(sample.finished and len(sample.token_ids) == length for sample in samples),
        "in-pass vs after, max |diff|": (in_pass_logps - after_logps).abs().max().item(),
        "authors vs after, max |diff|": (authors_rescoring(bench, sequences) - after_logps).abs().max().item(),
        "judge tokens": judge(bench, judge_texts).shape[1],
        "forwards in-pass": forwards(model, in_pass),
        "generate": forwards(model, generate),
    }
    variants = {
        "generate": generate,
        "generate again": generate,
        "in-pass": in_pass,
        "laser score": lambda: score_solutions(
            model, tokenizer, texts, sampled_ids, bench.reward_token_id, bench.eos_id, batch_size
        ),
        "authors": lambda: authors_rescoring(bench, sequences),
        "judge": lambda: judge(bench, judge_texts),
    }
    times = interleaved(variants, repeats, warmup=0)
    step = statistics.median(times["generate"]) / length
    predicted = predicted_in_pass_ratio(length, step, per_step_overhead(bench, batch_size))
    row = [bench.name, length, batch_size, median_ms(times, "generate"), ratio(times, "in-pass", "generate")]
    row += [f"{predicted:.3f}"]
    row += [ratio(times, name, "generate") for name in ("generate again", "laser score", "authors", "judge")]
    return row, checks


SETTINGS = {  # model: [(L, B), ...]
    "quick": {"tiny": [(64, 4)], "mid": [(32, 2)], "smollm2": [(16, 2)]},
    "full": {"tiny": [(64, 8), (256, 8)], "mid": [(64, 4), (128, 4)], "smollm2": [(64, 8)]},
}


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    models = setup(args, full_repeats=5)
    settings = SETTINGS["quick" if args.quick else "full"]
    rows = []
    for name in models:
        bench = build_bench(name)
        print(describe(bench), flush=True)
        for length, batch_size in settings[name]:
            row, checks = measure(bench, length, batch_size, args.repeats)
            print(format_checks(f"L={length} B={batch_size}", checks), flush=True)
            rows.append(row)
    print_table(
        f"Test-time scoring cost relative to generation (median of {args.repeats}, 25-75% range)", HEADERS, rows
    )


if __name__ == "__main__":
    main()
