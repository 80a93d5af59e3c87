"""One process of a data-parallel LaSeR step on a fixed global batch (see tests/test_multiprocess.py).

    accelerate launch --multi_gpu --num_processes 2 tests/multiprocess_worker.py MODEL_DIR OUT_FILE

Every process builds the same global generation batch (`GLOBAL_BATCH`), takes its contiguous shard
(TRL gathers rewards in process order, so process p holds rows [p * B, (p + 1) * B)), and runs
`LaserGRPOTrainer._generate_and_score_completions` on it, with the completions given by a
`rollout_func` instead of sampled, then `_compute_loss` and a backward through DDP. The main
process saves, for each of `CONFIGS`, what the test compares with one process on the whole batch.
Called in-process (`laser_step`), the same code is that one-process reference.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from laser_rl.config import LaserConfig
from laser_rl.testing import REWARD_TOKEN
from laser_rl.trainer import LaserGRPOTrainer

NUM_GENERATIONS = 4
MAX_COMPLETION_LENGTH = 3
# (prompt, completion, verifier reward, ends with EOS): 3 groups of 4. With 2 processes, shard 0 is
# rows 0-5 (5 correct, 1 wrong) and shard 1 rows 6-11 (1 correct, 4 wrong, 1 truncated), so the class
# weights of a shard are far from those of the global batch (11 finished: 6 correct, 5 wrong), and
# the second group is split between the processes.
GLOBAL_BATCH: list[tuple[str, str, float, bool]] = [
    *[("Q: 1+2=", answer, reward, True) for answer, reward in [("3", 1.0), ("3", 1.0), ("3", 1.0), ("4", 0.0)]],
    *[("Q: 3+4=", answer, reward, True) for answer, reward in [("7", 1.0), ("7", 1.0), ("12", 0.0), ("71", 0.0)]],
    ("Q: 5+3=", "9", 0.0, True),
    ("Q: 5+3=", "80", 0.0, True),
    ("Q: 5+3=", "8", 1.0, True),
    ("Q: 5+3=", "888", 0.0, False),  # hits max_completion_length without an EOS
]
# LaSeR settings per run: the MSE phase alone, and the MSE with self-rewarding advantages mixed in.
_LASER = dict(reward_token=REWARD_TOKEN, c_ref=-5.0, self_reward_beta=0.1, self_reward_loss_coef=1.0)
CONFIGS: dict[str, dict[str, Any]] = {
    "self_reward_mse": dict(_LASER, reasoning_warmup_steps=0, self_reward_warmup_steps=100),
    "mixed_advantages": dict(
        _LASER,
        reasoning_warmup_steps=0,
        self_reward_warmup_steps=0,
        self_rewarding_advantage_coef=0.5,
        self_rewarding_std_threshold=0.0,
        c_ref=-12.0,  # scores inside [0, 1], where their spread moves the advantages
    ),
}


def given_reward(completions: list, reward: list[float], **kwargs) -> list[float]:
    """The verifier reward written in the batch."""
    return reward


def _rollout(tokenizer: PreTrainedTokenizerBase, rows: list[tuple[str, str, float, bool]]):
    """A `rollout_func` that returns this process's fixed completions instead of sampling."""

    def rollout(prompts: list[str], trainer) -> dict[str, Any]:
        assert prompts == [prompt for prompt, *_ in rows], "the trainer was given another shard"
        completions = [answer + (tokenizer.eos_token if finished else "") for _, answer, _, finished in rows]
        return {
            "prompt_ids": tokenizer(prompts, add_special_tokens=False)["input_ids"],
            "completion_ids": tokenizer(completions, add_special_tokens=False)["input_ids"],
            "logprobs": None,
        }

    return rollout


def laser_step(model_dir: str, output_dir: str, **overrides) -> dict[str, Any]:
    """One LaSeR step of this process on its shard of `GLOBAL_BATCH`: gathered batch fields, metrics, gradients."""
    state = PartialState(cpu=True)
    shard_size = len(GLOBAL_BATCH) // state.num_processes
    rows = GLOBAL_BATCH[state.process_index * shard_size : (state.process_index + 1) * shard_size]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    args = LaserConfig(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=shard_size,
        num_generations=NUM_GENERATIONS,
        max_completion_length=MAX_COMPLETION_LENGTH,
        report_to="none",
        save_strategy="no",
        seed=0,
        **overrides,
    )
    trainer = LaserGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=given_reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": [prompt for prompt, *_ in GLOBAL_BATCH]}),
        processing_class=tokenizer,
        rollout_func=_rollout(tokenizer, rows),
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = args.gradient_accumulation_steps  # as Trainer's loop sets it
    model = trainer.accelerator.prepare_model(trainer.model)  # DDP when there are several processes
    batch = trainer._generate_and_score_completions(
        [{"prompt": prompt, "reward": reward} for prompt, _, reward, _ in rows]
    )
    loss = trainer._compute_loss(model, batch)
    trainer.accelerator.backward(loss)  # DDP averages the gradients over the processes
    return {
        "loss": gather(loss.detach().unsqueeze(0)).mean(),  # what Trainer logs: the mean over processes
        "grads": [p.grad.detach().clone() for p in trainer.accelerator.unwrap_model(model).parameters()],
        **{key: gather(batch[key]) for key in ("verifier_rewards", "self_reward_weights", "advantages")},
        "metrics": {
            name: values[-1] for name, values in trainer._metrics["train"].items() if name.startswith("laser/")
        },
        "num_processes": state.num_processes,
    }


def main(model_dir: str, out_file: str) -> None:
    results = {name: laser_step(model_dir, out_file + ".run", **overrides) for name, overrides in CONFIGS.items()}
    state = PartialState()
    if state.is_main_process:
        torch.save(results, out_file)
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
