"""c_ref: auto, as the trainer measures it, against `laser calibrate`'s value.

`laser calibrate` samples n solutions of each of P problems and averages log pi_ref(z_c | x, y, EOS)
over the finished ones, one forward each. The trainer with `c_ref="auto"` (the default) averages the
same quantity over its first generation batch only (G prompts x K solutions, read while `generate`
runs). Both here use the demo task's training problems, the model folder's prompt settings, sampling
at temperature 1 and the same z_c; the trainer runs one step for each of several seeds. The table
gives the difference in nats and in r_s (beta_v times it), what measuring on the fly changes in every
score of the run, next to the standard deviation that sampling alone gives the difference.

    python -m benchmarks.c_ref_auto --model demo_out/start                      # after `make demo`
    python -m benchmarks.c_ref_auto --model smollm2-135m-instruct --reward-token '<filename>' \
        --prompt-template '{problem} Answer with the number only, in \\boxed{}.' --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from benchmarks.common import print_table
from laser_rl import LaserConfig, LaserGRPOTrainer
from laser_rl.demo.task import exact_match_reward, sample_problems
from laser_rl.model_settings import ModelSettings
from laser_rl.models import resolve_model
from laser_rl.prompts import prompt_settings, render_prompts
from laser_rl.scoring import DEFAULT_BETA_V, eos_logprobs, token_stats
from laser_rl.tokens import DEFAULT_REWARD_TOKEN, resolve_reward_token
from laser_rl.workflows import Sampling, calibration_solutions

HEADERS = [
    "model", "z_c", "calibrate: mean (std, solutions)", "auto, seed", "solutions", "auto - calibrate", "in r_s",
    "noise (std)",
]  # fmt: skip


def calibrate(
    model_dir: str,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    reward_token: str,
    n: int,
    max_new_tokens: int,
) -> tuple:
    """What `laser calibrate --n N` computes, with the same library functions: (TokenStats, truncated count)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    token_id = resolve_reward_token(tokenizer, reward_token)
    sampling = Sampling(max_new_tokens=max_new_tokens, batch_size=64)
    records = [{} for _ in prompts]  # no responses given: n samples of each prompt
    sequences, _, truncated = calibration_solutions(model, tokenizer, records, prompts, token_id, n, sampling)
    if len(sequences) < 2:
        raise SystemExit(f"--model {model_dir}: fewer than 2 finished solutions; raise --max-new-tokens")
    logps = eos_logprobs(model, tokenizer, sequences, [token_id], 16)[:, 0]
    return token_stats(reward_token, token_id, logps), truncated


def auto_c_ref(folder: Path, dataset: Dataset, reward_token: str, seed: int, args: argparse.Namespace) -> tuple:
    """(c_ref, finished solutions) the trainer measured on its first generation batch."""
    with tempfile.TemporaryDirectory() as scratch:
        config = LaserConfig(
            output_dir=str(Path(scratch) / "run"),
            use_cpu=True,
            bf16=False,
            seed=seed,
            max_steps=1,
            per_device_train_batch_size=args.prompts_per_batch * args.num_generations,
            num_generations=args.num_generations,
            max_completion_length=args.max_new_tokens,
            temperature=1.0,
            top_k=0,
            activation_checkpointing=False,
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            reward_token=reward_token,
            c_ref="auto",
        )
        trainer = LaserGRPOTrainer(str(folder), exact_match_reward, args=config, train_dataset=dataset)
        trainer.train()
        logged = next(entry for entry in trainer.state.log_history if "laser/c_ref" in entry)
        finished = round((1 - logged["completions/clipped_ratio"]) * config.per_device_train_batch_size)
        return logged["laser/c_ref"], finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder, .gguf file or name")
    parser.add_argument("--reward-token", help="z_c (default: the folder's laser_config.json, else the library's)")
    parser.add_argument("--problems", type=int, default=32, help="calibration problems (32)")
    parser.add_argument("--n", type=int, default=4, help="calibration samples per problem (4)")
    parser.add_argument("--prompts-per-batch", type=int, default=8, help="prompts per generation batch (8)")
    parser.add_argument("--num-generations", type=int, default=8, help="K, solutions per prompt (8)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--prompt-template", help="default: the folder's laser_config.json, else the library's")
    args = parser.parse_args()
    torch.set_num_threads(2)

    model_dir = resolve_model(args.model)
    stored = ModelSettings.read(model_dir)
    reward_token = args.reward_token or stored.reward_token or DEFAULT_REWARD_TOKEN
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template, chat = prompt_settings(tokenizer, stored, args.prompt_template, None)
    calibration = sample_problems(args.problems, "train", seed=3)
    calibration_prompts = render_prompts(tokenizer, [p.text for p in calibration], template, chat)
    stats, truncated = calibrate(model_dir, tokenizer, calibration_prompts, reward_token, args.n, args.max_new_tokens)
    print(f"calibrate: {stats.count} finished solutions, {truncated} truncated left out")
    training = sample_problems(args.prompts_per_batch * 4, "train", seed=2)
    prompts = render_prompts(tokenizer, [p.text for p in training], template, chat)
    dataset = Dataset.from_dict({"prompt": prompts, "answer": [p.answer for p in training]})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        # A copy of the folder without laser_config.json, whose c_ref "auto" would take instead of measuring.
        folder = Path(scratch) / "model"
        shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns("laser_config.json"))
        for seed in args.seeds:
            value, finished = auto_c_ref(folder, dataset, reward_token, seed, args)
            difference = value - stats.mean
            # The standard deviation of the difference of two means of samples from one distribution.
            noise = stats.std * (1 / finished + 1 / stats.count) ** 0.5
            rows.append(
                [
                    Path(args.model).name, reward_token, f"{stats.mean:.3f} ({stats.std:.3f}, {stats.count})",
                    str(seed), str(finished), f"{difference:+.3f}", f"{DEFAULT_BETA_V * difference:+.4f}",
                    f"{noise:.3f}",
                ]
            )  # fmt: skip
    print_table("c_ref: auto (first generation batch) against laser calibrate, in nats", HEADERS, rows)


if __name__ == "__main__":
    main()
