"""A cheap supervised warm start (TRL's SFTTrainer) that leaves room for RL to improve.

The tiny model is trained from scratch, nearly to convergence, on a mix of gold solutions and
solutions with one deliberate slip (see ``corrupted_solution``). It learns the procedure and also
learns to slip now and then, so that, sampling at temperature 1.0, it solves about 20-35% of the
held-out problems. The share of noisy solutions sets that accuracy stably across seeds, where an
under-trained model's accuracy swings with the seed and step count; and a slip is an error that the
model can learn to avoid (GRPO) and to recognise (the self-verifier).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from laser_rl.demo.progress import TrainingProgress
from laser_rl.demo.task import (
    DEFAULT_DIGITS,
    Problem,
    max_solution_length,
    sample_problems,
    to_dataset,
    verify,
)
from laser_rl.models import resolve_model
from laser_rl.testing import build_model, build_tokenizer


@dataclass(frozen=True)
class WarmStartSettings:
    """How much, and what, the warm start trains.

    Attributes:
        num_examples: distinct training problems (one gold solution each).
        max_steps: optimizer steps.
        batch_size: examples per step; small batches learn the task in fewer samples.
        learning_rate: peak learning rate (short linear warm-up, then cosine decay to 0).
        hidden_size: model width.
        num_layers: transformer blocks.
        num_heads: attention heads.
        noise: share of training solutions with one deliberate slip (see ``corrupted_solution``).
        seed: seeds the model init, the data and the data order.
        base_model: None for a tiny Qwen2 built from scratch (the sizes above) with the character
            tokenizer; else a pretrained model (a name from ``laser models list``, a folder or a
            ``.gguf`` file) that is fine-tuned with its own tokenizer, its EOS ending each solution.
    """

    num_examples: int
    max_steps: int
    batch_size: int
    learning_rate: float
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    noise: float = 0.0
    seed: int = 0
    base_model: str | None = None


# Measured on a shared 2-core CPU (one torch thread), test accuracy at temperature 1.0: DEFAULT 250-360 s,
# 21.3-31.2% over seeds 0-2 on two CPU models (200 problems x 16); QUICK 23% for seed 0 (48 problems x 8).
# DEFAULT's 2400 steps (1200 give the same accuracy) make a precise start: its errors are nearly all the
# deliberate carry slip, which the score can learn to see, so RL leaves fewer errors of kinds it cannot
# (docs/demo.md).
DEFAULT = WarmStartSettings(
    num_examples=8000, max_steps=2400, batch_size=16, learning_rate=2e-3, num_layers=2, noise=0.7
)
QUICK = WarmStartSettings(
    num_examples=4000, max_steps=600, batch_size=16, learning_rate=1.5e-3, num_layers=2, noise=0.5
)


def warm_start(
    output_dir: str | Path, settings: WarmStartSettings = DEFAULT, digits: tuple[int, int] = DEFAULT_DIGITS
) -> Path:
    """Build the tokenizer and a fresh model (or load a pretrained one), SFT it on the task, and save
    both to ``output_dir``.

    Returns:
        ``output_dir``: ``AutoModelForCausalLM.from_pretrained`` loads the model, and
        ``PreTrainedTokenizerFast.from_pretrained`` the tokenizer (``AutoTokenizer`` does not yet: it
        forces ``Qwen2Tokenizer`` on a qwen2 config, whose byte-level pre-tokenizer drops spaces and
        newlines of this character vocabulary).
    """
    output_dir = Path(output_dir)
    if settings.base_model is None:
        tokenizer = build_tokenizer()
        model = build_model(
            tokenizer,
            hidden_size=settings.hidden_size,
            num_layers=settings.num_layers,
            num_heads=settings.num_heads,
            seed=settings.seed,
        )
    else:
        path = resolve_model(settings.base_model)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    problems = sample_problems(settings.num_examples, "train", seed=settings.seed, digits=digits)
    dataset = to_dataset(
        problems, completions=True, noise=settings.noise, seed=settings.seed, eos_token=tokenizer.eos_token
    )
    # TRL would append a missing EOS itself; checking here keeps the "model learns to stop" contract explicit.
    if not all(completion.endswith(tokenizer.eos_token) for completion in dataset["completion"]):
        raise ValueError("every SFT completion must end with the EOS token")
    config = SFTConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,  # TRL defaults to bf16, which the CPU path does not support here
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(20, settings.max_steps // 10),
        completion_only_loss=True,
        activation_checkpointing=False,  # TRL turns it on; a model this small needs no memory saving
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, settings.max_steps // 10),
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    TrainingProgress.attach(trainer, "warm start", ("loss", "mean_token_accuracy"))
    trainer.train()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


@torch.no_grad()
def sample_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    n: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = max_solution_length(DEFAULT_DIGITS),
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Share of ``n`` sampled solutions per problem that :func:`verify` accepts.

    Sampling is plain (top-k and top-p off), as in the paper's evaluation, and seeded without
    touching the caller's global RNG state.
    """
    prompts = [problem.prompt for problem in problems for _ in range(n)]
    answers = [problem.answer for problem in problems for _ in range(n)]
    was_training = model.training
    model.eval()
    correct = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            inputs = tokenizer(
                prompts[start : start + batch_size], return_tensors="pt", padding=True, padding_side="left"
            ).to(model.device)
            outputs = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            completions = outputs[:, inputs["input_ids"].shape[1] :]
            responses = tokenizer.batch_decode(completions, skip_special_tokens=True)
            batch_answers = answers[start : start + batch_size]
            correct += sum(verify(r, a) for r, a in zip(responses, batch_answers, strict=True))
    model.train(was_training)
    return correct / len(prompts)
