"""A whole LaSeR training step on SmolLM2-135M-Instruct with TRL's colocated vLLM (the CPU build) generating the
rollouts, against the same step with transformers' `generate`.

Runs in the vLLM environment (`make vllm`), wall-clock time, on every core unless `--threads` says otherwise
(the demo trains its two models side by side, one thread each):

    .venv-vllm/bin/python -m benchmarks.vllm_train_step [--quick] [--threads 1]

Both trainers are `LaserGRPOTrainer`s with the same config but `use_vllm`: the demo's shape of step (4 prompts x
8 samples, up to L new tokens, lr 1e-5, beta_v 0.5), the MSE from the first step and the self-rewarding
advantages from the second, so each run covers both phases. A step is rollout (generation, rewards, the old-policy
forward vLLM needs, scores), loss, backward and optimizer step, timed from TRL's `on_step_begin` to `on_step_end`.
The two trainers train in turns (`--repeats` runs of `--steps` steps each); each run's first step (vLLM's
torch.compile warm-up, the first weight sync) is left out. Their rollouts differ (another sampler), so the
table also gives the tokens each generated: the per-token ratio compares the same work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback

from benchmarks.common import SMOLLM2_REWARD_TOKEN, print_table
from laser_rl.config import LaserConfig
from laser_rl.models import pull
from laser_rl.trainer import LaserGRPOTrainer

PROMPTS_PER_STEP, NUM_GENERATIONS = 4, 8


def has_boxed_answer(completions, answer, **kwargs) -> list[float]:
    """1 when the solution's text holds the right sum, a verifier stand-in that gives both classes."""
    return [float(str(gold) in completion) for completion, gold in zip(completions, answer, strict=True)]


class StepTimes(TrainerCallback):
    """Wall-clock seconds of each optimizer step (rollout included: TRL generates inside the step)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def build_trainer(path: str, use_vllm: bool, length: int, steps: int, output_dir: str) -> LaserGRPOTrainer:
    rows = PROMPTS_PER_STEP * steps
    dataset = Dataset.from_dict({
        "prompt": [[{"role": "user", "content": f"What is {17 * i + 3} + {29 * i + 5}? Answer in \\boxed{{}}."}]
                   for i in range(rows)],
        "answer": [46 * i + 8 for i in range(rows)],
    })  # fmt: skip
    vllm = dict(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.15, vllm_max_model_length=512)
    args = LaserConfig(
        output_dir=output_dir, use_cpu=True, bf16=False, report_to="none", save_strategy="no", seed=0,
        per_device_train_batch_size=PROMPTS_PER_STEP * NUM_GENERATIONS, num_generations=NUM_GENERATIONS,
        max_completion_length=length, max_steps=steps, logging_steps=1, learning_rate=1e-5,
        reward_token=SMOLLM2_REWARD_TOKEN, c_ref=-40.0, self_reward_beta=0.5,
        reasoning_warmup_steps=0, self_reward_warmup_steps=1, self_rewarding_std_threshold=0.0,
        **(vllm if use_vllm else {}),
    )  # fmt: skip
    return LaserGRPOTrainer(
        model=path, reward_funcs=has_boxed_answer, args=args, train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(path),
    )  # fmt: skip


def train(trainer: LaserGRPOTrainer) -> tuple[list[float], list[float]]:
    """One run from step 0: (seconds, completion tokens) of each step but the first."""
    timer = StepTimes()
    trainer.add_callback(timer)
    trainer.train()
    trainer.remove_callback(timer)
    logs = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    tokens = [entry["completions/mean_length"] * PROMPTS_PER_STEP * NUM_GENERATIONS for entry in logs]
    return timer.seconds[1:], tokens[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L = 32, 2 steps, one run each")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each trainer, in turns")
    parser.add_argument("--steps", type=int, default=4, help="steps per run (the first is not timed)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (the demo's: 1)")
    args = parser.parse_args()
    length, steps, repeats = (32, 2, 1) if args.quick else (64, args.steps, args.repeats)
    torch.set_num_threads(args.threads)  # vLLM's colocated engine runs in this process, on these threads
    path = str(pull("smollm2-135m-instruct"))
    print(f"SmolLM2-135M-Instruct, {args.threads} threads, L = {length}, "
          f"{PROMPTS_PER_STEP} x {NUM_GENERATIONS} rollouts a step", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        trainers = {
            "transformers": build_trainer(path, False, length, steps, f"{out}/hf"),
            "vLLM": build_trainer(path, True, length, steps, f"{out}/vllm"),
        }
        seconds = {name: [] for name in trainers}
        tokens = {name: [] for name in trainers}
        for _ in range(repeats):
            for name, trainer in trainers.items():
                times, counts = train(trainer)
                seconds[name] += times
                tokens[name] += counts
    medians = {}  # generation: (step seconds, milliseconds per generated token)
    for name in trainers:
        per_token = [s / t for s, t in zip(seconds[name], tokens[name], strict=True)]
        medians[name] = (statistics.median(seconds[name]), 1000 * statistics.median(per_token))
    rows = [
        [name, len(seconds[name]), f"{step:.2f}", f"{statistics.mean(tokens[name]):.0f}", f"{per_token:.1f}"]
        for name, (step, per_token) in medians.items()
    ]
    headers = ["generation", "steps timed", "step (s)", "tokens a step", "ms per generated token"]
    print_table("LaSeR training step, medians", headers, rows)
    (hf_step, hf_token), (vllm_step, vllm_token) = medians["transformers"], medians["vLLM"]
    print(f"\nvLLM / transformers: step {vllm_step / hf_step:.2f}, per generated token {vllm_token / hf_token:.2f}")


if __name__ == "__main__":  # vLLM spawns processes: the entry point must be guarded
    main()
