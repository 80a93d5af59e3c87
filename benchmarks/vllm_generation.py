"""vLLM's CPU build against transformers on SmolLM2-135M-Instruct: tokens/s, the in-pass score's cost, and
what bfloat16 does to the score.

Runs in the vLLM environment (`make vllm`), wall-clock time (vLLM's engine is another process), both cores:

    .venv-vllm/bin/python -m benchmarks.vllm_generation [--quick]

- throughput: the same prompts (each repeated n times), up to L new tokens at temperature 1, B rows at once;
  tokens/s (solution tokens, EOS included) of `generate_with_scores` (transformers, the score read in the pass)
  and of `generate_with_scores_vllm` (vLLM, the score by a one-token request after each finished solution), in
  float32 and bfloat16, interleaved repetition by repetition.
- score cost: `generate_with_scores_vllm` against vLLM sampling the same requests without the score request
  (same seeds, so the same solutions), for KV-cache block sizes 128 (vLLM's CPU default) and 32. Goal <= 1.05.
- score error: log pi(z_c) of each finished vLLM solution against a float32 transformers forward of the same ids.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

from benchmarks.common import SMOLLM2_REWARD_TOKEN, print_table
from laser_rl.generation import (
    generate_with_scores,
    generate_with_scores_vllm,
    load_model,
    load_tokenizer,
    load_vllm,
    sample_vllm,
)
from laser_rl.models import pull
from laser_rl.prompts import render_prompts
from laser_rl.scoring import score_solutions

SAMPLES_PER_PROMPT = 8
# The score request re-reads prompt + solution from the prefix cache, which holds whole blocks only: up to a
# block less one token is computed again. 128 is vLLM's CPU default; its CPU attention takes multiples of 32 only.
BLOCK_SIZES = (128, 32)
PARTS = ["throughput", "score-cost"]


def math_prompts(tokenizer, rows: int) -> list[str]:
    problems = [f"What is {17 * i + 3} + {29 * i + 5}? Put the final answer in \\boxed{{}}." for i in range(rows)]
    return render_prompts(tokenizer, problems[: rows // SAMPLES_PER_PROMPT], "{problem}", chat=True)


def tokens(groups) -> int:
    return sum(len(sample.token_ids) for group in groups for sample in group)


def timed(function, *args, **kwargs):
    """function(*args, **kwargs) and its wall-clock seconds."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def shut_down(engine) -> None:
    engine.llm_engine.engine_core.shutdown()


def score_errors(model, tokenizer, prompts, groups, reward_token_id) -> tuple[int, float, float]:
    """(finished count, max and mean |log pi(z_c) difference|) of vLLM's scores against a transformers forward."""
    finished = [(prompt, s) for prompt, group in zip(prompts, groups, strict=True) for s in group if s.finished]
    ids = [s.token_ids for _, s in finished]
    reference = score_solutions(
        model, tokenizer, [p for p, _ in finished], ids, reward_token_id, tokenizer.eos_token_id
    )
    differences = [abs(s.reward_token_logp - r) for (_, s), r in zip(finished, reference, strict=True)]
    if not differences:  # none finished within L tokens
        return 0, math.nan, math.nan
    return len(finished), max(differences), statistics.mean(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B = 8, L = 48, one repetition")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS, help="(all)")
    args = parser.parse_args()
    batches, length, repeats = ([8], 48, 1) if args.quick else ([32, 128], 64, args.repeats)
    torch.set_num_threads(os.cpu_count())
    path = str(pull("smollm2-135m-instruct"))
    tokenizer = load_tokenizer(path)
    reward_token_id = tokenizer.convert_tokens_to_ids(SMOLLM2_REWARD_TOKEN)
    common = dict(n=SAMPLES_PER_PROMPT, reward_token_id=reward_token_id, max_new_tokens=length, seed=0)
    print(f"SmolLM2-135M-Instruct, {os.cpu_count()} cores, L = {length}, n = {SAMPLES_PER_PROMPT}", flush=True)
    if "throughput" in args.parts:
        throughput_and_errors(path, tokenizer, batches, repeats, common)
    if "score-cost" in args.parts:
        score_costs(path, math_prompts(tokenizer, batches[-1]), repeats, common)


def throughput_and_errors(path: str, tokenizer, batches: list[int], repeats: int, common: dict) -> None:
    """The tokens/s table, transformers against vLLM in both dtypes, and the score's error table."""
    models = {"float32": load_model(path), "bfloat16": load_model(path).to(torch.bfloat16)}
    engines = {dtype: load_vllm(path, seed=0, dtype=dtype) for dtype in models}
    throughput, errors = [], []
    for dtype, model in models.items():
        for batch in batches:
            prompts = math_prompts(tokenizer, batch)
            speeds = {"transformers": [], "vLLM": []}
            for _ in range(repeats):
                hf, seconds = timed(generate_with_scores, model, tokenizer, prompts, batch_size=batch, **common)
                speeds["transformers"].append(tokens(hf) / seconds)
                served, seconds = timed(generate_with_scores_vllm, engines[dtype], prompts, **common)
                speeds["vLLM"].append(tokens(served) / seconds)
            ratios = [v / t for v, t in zip(speeds["vLLM"], speeds["transformers"], strict=True)]
            medians = [f"{statistics.median(speeds[name]):.0f}" for name in ("transformers", "vLLM")]
            throughput.append([dtype, batch, *medians, f"{statistics.median(ratios):.2f}"])
        finished, worst, mean = score_errors(models["float32"], tokenizer, prompts, served, common["reward_token_id"])
        errors.append([dtype, f"{finished} / {batch}", f"{worst:.2e}", f"{mean:.2e}"])
    for engine in engines.values():  # before any next engine: a 4 GiB KV cache each
        shut_down(engine)
    print_table("Tokens/s, medians", ["dtype", "B", "transformers", "vLLM", "vLLM / transformers"], throughput)
    print_table(
        "log pi(z_c) of vLLM's finished solutions against a float32 transformers forward of the same ids",
        ["vLLM dtype", "finished / rows", "max |difference| (nats)", "mean |difference|"],
        errors,
    )


def score_costs(path: str, prompts: list[str], repeats: int, common: dict) -> None:
    """The score request's cost against sampling alone (the same seeds give the same solutions), by block size."""
    costs = []
    for block_size in BLOCK_SIZES:
        engine = load_vllm(path, seed=0, block_size=block_size)
        ratios, speeds = [], []
        for _ in range(repeats + 1):  # the first is the warm-up of this engine's shapes
            served, scored = timed(generate_with_scores_vllm, engine, prompts, **common)
            _, sampled = timed(sample_vllm, engine, prompts, temperature=1.0, top_p=1.0, top_k=0, **common)
            ratios.append(scored / sampled)
            speeds.append(tokens(served) / scored)
        shut_down(engine)
        costs.append([block_size, len(prompts) * SAMPLES_PER_PROMPT, f"{statistics.median(speeds[1:]):.0f}",
                      f"{statistics.median(ratios[1:]):.3f}"])  # fmt: skip
        print(f"  block size {block_size}: {costs[-1]}", flush=True)
    print_table("The in-pass score's cost on vLLM (float32), by KV-cache block size",
                ["block size", "B", "tokens/s, scored", "scored / sampling only"], costs)  # fmt: skip


if __name__ == "__main__":  # vLLM spawns its engine process: the entry point must be guarded
    main()
