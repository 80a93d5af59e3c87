"""Generation throughput: tokens/s of `generation.generate_with_scores` against plain `model.generate`.

Same prompts, samples per prompt, batches, seed and solution lengths. Lengths are forced by
`common.ForcedLengths` and spread over [L/4, L] within each batch, so rows finish at different
steps as real solutions do and every batch runs until its longest row ends. Plain `generate` runs
the same batches generate_with_scores forms (each prompt repeated n times, B rows at a time, left
padding). Tokens counted: solution tokens, EOS included, the same for both (the step that reads
the score after the last EOS is overhead, not output). Goal: ratio >= 0.95.

The "predicted" column is the ratio the design implies, from quantities that noise hardly touches:
one more decoding step per batch (L + 1 steps instead of L) and the per-step cost of the score hook
and its stopping criterion over plain generate's EOS criterion (`per_step_overhead`, timed over
thousands of calls on logits of the model's shape), against the measured time of a plain step.

    python -m benchmarks.generation_throughput [--quick] [--models tiny mid]
"""

from __future__ import annotations

import statistics

import torch

from benchmarks.common import (
    Bench,
    ForcedLengths,
    argument_parser,
    build_bench,
    describe,
    interleaved,
    per_step_overhead,
    plain_sampling_config,
    predicted_in_pass_ratio,
    print_table,
    prompts,
    ratio,
    setup,
    spread_lengths,
)
from laser_rl.generation import generate_with_scores

HEADERS = [
    "model", "L", "prompts x n", "B", "tokens", "generate tok/s", "in-pass tok/s", "in-pass / generate",
    "step (ms)", "overhead / step (us)", "predicted",
]  # fmt: skip


def measure(bench: Bench, length: int, num_prompts: int, n: int, batch_size: int, repeats: int) -> list[object]:
    """One table row: throughput of both ways of sampling n solutions for each of num_prompts prompts."""
    tokenizer, model = bench.tokenizer, bench.model
    texts = prompts(num_prompts)
    rows = [text for text in texts for _ in range(n)]
    lengths = spread_lengths(length, batch_size, shortest=0.25)
    tokens = sum(sum(lengths[: len(rows[start : start + batch_size])]) for start in range(0, len(rows), batch_size))
    config = plain_sampling_config(bench, length)

    @torch.no_grad()
    def plain() -> None:
        torch.manual_seed(0)
        with ForcedLengths(bench, lengths):
            for start in range(0, len(rows), batch_size):
                batch = tokenizer(
                    rows[start : start + batch_size],
                    padding=True,
                    padding_side="left",
                    add_special_tokens=False,
                    return_tensors="pt",
                )
                model.generate(**batch, generation_config=config)

    def in_pass() -> list:
        with ForcedLengths(bench, lengths):
            return generate_with_scores(
                model, tokenizer, texts, n, bench.reward_token_id, top_k=0, max_new_tokens=length,
                seed=0, batch_size=batch_size, progress=False,
            )  # fmt: skip

    plain()  # warm-up
    samples = [sample for group in in_pass() for sample in group]
    assert all(sample.finished for sample in samples) and sum(len(s.token_ids) for s in samples) == tokens
    times = interleaved({"generate": plain, "in-pass": in_pass}, repeats, warmup=0)
    throughput = {name: f"{tokens / statistics.median(values):.0f}" for name, values in times.items()}
    steps = length * -(-len(rows) // batch_size)  # every batch runs until its longest row, of length L
    step = statistics.median(times["generate"]) / steps
    overhead = per_step_overhead(bench, batch_size)
    return [
        bench.name,
        length,
        f"{num_prompts} x {n}",
        batch_size,
        tokens,
        throughput["generate"],
        throughput["in-pass"],
        ratio(times, "generate", "in-pass"),  # time ratio inverted: throughput of in-pass / generate
        f"{1000 * step:.1f}",
        f"{1e6 * overhead:.0f}",
        f"{1 / predicted_in_pass_ratio(length, step, overhead):.3f}",
    ]


SETTINGS = {  # model: [(L, prompts, n, B), ...]
    "quick": {"tiny": [(64, 2, 4, 4)], "mid": [(16, 1, 4, 4)], "smollm2": [(16, 1, 4, 4)]},
    "full": {"tiny": [(128, 4, 8, 8), (512, 2, 8, 8)], "mid": [(64, 2, 4, 4)], "smollm2": [(64, 2, 4, 8)]},
}


def main() -> None:
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    models = setup(args, full_repeats=5)
    settings = SETTINGS["quick" if args.quick else "full"]
    rows = []
    for name in models:
        bench = build_bench(name)
        print(describe(bench), flush=True)
        for length, num_prompts, n, batch_size in settings[name]:
            rows.append(measure(bench, length, num_prompts, n, batch_size, args.repeats))
    print_table(f"Generation throughput (median of {args.repeats}, 25-75% range)", HEADERS, rows)


if __name__ == "__main__":
    main()
