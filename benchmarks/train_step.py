"""Training-step cost of LaSeR against GRPO: same model, generation batch and seed.

All trainers hold deep copies of one model. The generation batch is built once by LaSeR's
`_generate_and_score_completions` (solution lengths forced by `common.ForcedLengths`, spread over
[L/2, L]; a deterministic reward puts solutions in both classes) and every variant runs on it:
- loss step, `_compute_loss` forward + backward (the optimizer step, the same for all, is left out):
  GRPO (`trl.GRPOTrainer`, the baseline); LaSeR in its MSE phase (the score read in the policy
  forward); the authors' way (`AuthorsWayTrainer`: z_c written after each EOS by a Python loop over
  rows and positions, a frozen reference model's forward every step, then GRPO's loss on the
  extended batch plus the MSE on z_c's log-prob, as in their verl dp_actor.py);
- rollout, `_generate_and_score_completions`: GRPO, LaSeR-MSE, and LaSeR with self-rewarding
  advantages (SWA), whose rollout needs r_s: read during `generate`, plus a forward of the one row
  whose EOS ends the batch; and, side by side, SWA as the previous version did it
  (`ForwardScoredTrainer`: a no-grad forward over the whole rollout);
- peak memory of one loss step, from torch profiler's CPU allocation events (see `peak_bytes`).

    python -m benchmarks.train_step [--quick] [--models tiny mid smollm2]
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.profiler import ProfilerActivity, profile
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import add_fused_lm_head

from benchmarks.common import (
    Bench,
    ForcedLengths,
    argument_parser,
    build_bench,
    describe,
    format_checks,
    interleaved,
    median_ms,
    print_table,
    prompts,
    ratio,
    setup,
    spread_lengths,
)
from laser_rl.config import LaserConfig
from laser_rl.core import self_reward_mse, self_reward_scores
from laser_rl.trainer import LaserGRPOTrainer

NUM_GENERATIONS = 4
C_REF, BETA_V, ALPHA = -5.0, 0.1, 0.1
LASER_KEYS = ("verifier_rewards", "self_reward_weights")


def even_length_reward(completions, **kwargs) -> list[float]:
    """A verifier stand-in that splits solutions into both classes deterministically."""
    return [float(len(completion) % 2 == 0) for completion in completions]


def insert_reward_token_loop(
    completion_ids: torch.Tensor, completion_mask: torch.Tensor, reward_token_id: int, eos_token_id: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z_c after each row's EOS the authors' way: deep copies, then a Python loop over rows that scans
    each row from the end, element by element, for its last token. Their loop looks for the last
    non-pad id (their pad is the EOS); here pad != EOS, so it scans the mask. One pad column is added
    first so the longest row has room.

    Returns:
        ids, mask: (B, L + 1) with z_c written and unmasked; slots: (B,) z_c's column (-1: none).
    """
    ids = F.pad(copy.deepcopy(completion_ids), (0, 1), value=pad)
    mask = F.pad(copy.deepcopy(completion_mask), (0, 1), value=0)
    slots = torch.full((len(ids),), -1)
    for i in range(len(ids)):
        row = mask[i]
        for idx in range(len(row) - 1, -1, -1):
            if row[idx] != 0:
                if ids[i, idx] == eos_token_id:  # finished: z_c goes right after the EOS
                    ids[i, idx + 1] = reward_token_id
                    mask[i, idx + 1] = 1
                    slots[i] = idx + 1
                break
    return ids, mask, slots


class AuthorsWayTrainer(GRPOTrainer):
    """GRPO with LaSeR's MSE added the way the authors' verl code does it (see the module docstring)."""

    def __init__(self, *args, reward_token_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reward_token_id = reward_token_id
        # Their scripts keep a reference model running although the KL coefficient is 0.
        self.reference = copy.deepcopy(self.model).requires_grad_(False).eval()
        add_fused_lm_head(self.reference, temperature=self.temperature)
        self._last_logps: torch.Tensor | None = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        self._last_logps = result[0]
        return result

    def laser_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The GRPO loss on the batch with z_c inserted, plus alpha * MSE; also z_c's log-probs (B,)."""
        completion_ids, completion_mask = batch["completion_ids"], batch["completion_mask"]
        with torch.no_grad():  # the reference forward of every step, on the rollout as generated
            super()._get_per_token_logps_and_entropies(
                self.reference,
                torch.cat([batch["prompt_ids"], completion_ids], dim=1),
                torch.cat([batch["prompt_mask"], completion_mask], dim=1),
                completion_ids.size(1),
            )
        ids, mask, slots = insert_reward_token_loop(
            completion_ids, completion_mask, self.reward_token_id, self.eos_token_ids[0], self._tokenizer.pad_token_id
        )
        # z_c is attended to and scored, but kept out of the policy-gradient loss (TRL's tool_mask).
        extended = dict(batch, completion_ids=ids, completion_mask=mask, tool_mask=F.pad(completion_mask, (0, 1)))
        loss = self._compute_loss(self.model, extended)
        finished = slots >= 0
        rows = torch.arange(len(slots))
        logps = self._last_logps[rows, slots.clamp(min=0)] * self.temperature  # undo the fused head's temperature
        scores = self_reward_scores(logps, C_REF, BETA_V)
        mse = self_reward_mse(scores, batch["verifier_rewards"], batch["self_reward_weights"] * finished, 1)
        return loss + ALPHA * mse, logps.detach().masked_fill(~finished, 0.0)


class ForwardScoredTrainer(LaserGRPOTrainer):
    """LaSeR before the rollout's score was read in `generate`: TRL's generation untouched, so every
    finished row's r_s comes from a no-grad forward over the rollout."""

    def _generate_single_turn(self, *args, **kwargs):
        return GRPOTrainer._generate_single_turn(self, *args, **kwargs)


def laser_reward_token_logps(trainer: LaserGRPOTrainer, batch: dict) -> torch.Tensor:
    """log pi(z_c | x, y, EOS) (B,) as LaSeR's loss reads it from the policy forward."""
    captured = []
    original = trainer._scores

    def spy(logps: torch.Tensor, inputs: dict) -> torch.Tensor:
        captured.append(logps.detach())
        return original(logps, inputs)

    trainer._scores = spy
    try:
        trainer._compute_loss(trainer.model, batch)
    finally:
        del trainer._scores
    return captured[0]


def set_phase(trainer: LaserGRPOTrainer, self_rewarding_advantages: bool) -> None:
    """Put a LaSeR trainer at step 0 in its MSE phase, or in the phase with self-rewarding advantages."""
    trainer.args.reasoning_warmup_steps = 0
    trainer.args.self_reward_warmup_steps = 0 if self_rewarding_advantages else 10**9


def peak_bytes(step: Callable[[], object], model: torch.nn.Module) -> int:
    """Peak tensor memory of `step()` above the level at its start, in bytes (`model`'s gradients are
    freed first, so that the step allocates them anew).

    tracemalloc cannot see tensors (torch's CPU allocator calls the C allocator directly), and
    ru_maxrss is a per-process high-water mark. torch.profiler with profile_memory=True records
    every CPU tensor allocation and free ("[memory]" events, signed sizes); their running sum is
    the live tensor memory, whose maximum is the peak. torch's CPU allocator does not cache, so
    this is what the step asks of the system, deterministic for a given batch.
    """
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(
        (event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"),
        key=lambda event: event.start_ns(),
    )
    level = peak = 0
    for event in events:
        level += event.nbytes()
        peak = max(peak, level)
    return peak


def build_trainers(bench: Bench, length: int, batch_size: int, output_dir: str) -> dict[str, GRPOTrainer]:
    """GRPO, LaSeR and the authors' way on deep copies of the model, with the same arguments."""
    fields = dict(
        output_dir=output_dir,
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=batch_size,
        num_generations=NUM_GENERATIONS,
        max_completion_length=length,
        temperature=1.0,
        report_to="none",
        save_strategy="no",
        seed=0,
    )
    common = dict(
        reward_funcs=even_length_reward,
        train_dataset=Dataset.from_dict({"prompt": prompts(batch_size)}),
        processing_class=bench.tokenizer,
    )
    laser_args = LaserConfig(**fields, reward_token=bench.reward_token, c_ref=C_REF, self_reward_beta=BETA_V)
    trainers = {
        "GRPO": GRPOTrainer(model=copy.deepcopy(bench.model), args=GRPOConfig(**fields), **common),
        "LaSeR": LaserGRPOTrainer(model=copy.deepcopy(bench.model), args=laser_args, **common),
        "LaSeR-forward": ForwardScoredTrainer(
            model=copy.deepcopy(bench.model), args=copy.deepcopy(laser_args), **common
        ),
        "authors": AuthorsWayTrainer(
            model=copy.deepcopy(bench.model),
            args=GRPOConfig(**fields),
            reward_token_id=bench.reward_token_id,
            **common,
        ),
    }
    for trainer in trainers.values():
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps  # as train() does
    return trainers


def measure(
    bench: Bench, length: int, batch_size: int, repeats: int, rollouts: bool = True
) -> tuple[list[object], list[object] | None, dict]:
    """The loss-step row and the rollout row (None unless `rollouts`) for B solutions of up to L
    tokens, and sanity checks."""
    with tempfile.TemporaryDirectory() as output_dir:
        trainers = build_trainers(bench, length, batch_size, output_dir)
        return _measure(trainers, bench, length, batch_size, repeats, rollouts)


def _measure(
    trainers: dict[str, GRPOTrainer], bench: Bench, length: int, batch_size: int, repeats: int, rollouts: bool
) -> tuple[list[object], list[object] | None, dict]:
    grpo, laser, authors = trainers["GRPO"], trainers["LaSeR"], trainers["authors"]
    lengths = spread_lengths(length, batch_size)
    inputs = [{"prompt": prompt} for prompt in prompts(batch_size // NUM_GENERATIONS) for _ in range(NUM_GENERATIONS)]

    def rollout(trainer: GRPOTrainer, self_rewarding_advantages: bool = False) -> dict:
        if isinstance(trainer, LaserGRPOTrainer):
            set_phase(trainer, self_rewarding_advantages)
        torch.manual_seed(0)
        with ForcedLengths(Bench(bench.name, trainer.model, bench.tokenizer), lengths):
            return trainer._generate_and_score_completions(inputs)

    batch = rollout(laser)
    grpo_batch = {key: value for key, value in batch.items() if key not in LASER_KEYS}

    def loss_step(trainer: GRPOTrainer, loss: Callable[[], torch.Tensor]) -> None:
        trainer.model.zero_grad(set_to_none=True)
        loss().backward()

    steps = {
        "GRPO": lambda: loss_step(grpo, lambda: grpo._compute_loss(grpo.model, grpo_batch)),
        "LaSeR": lambda: loss_step(laser, lambda: laser._compute_loss(laser.model, batch)),
        "authors": lambda: loss_step(authors, lambda: authors.laser_loss(batch)[0]),
    }
    times = interleaved(steps, repeats, warmup=2)
    peaks = {name: peak_bytes(step, trainers[name].model) for name, step in steps.items()}
    loss_row = [
        bench.name,
        length,
        batch_size,
        median_ms(times, "GRPO"),
        ratio(times, "LaSeR", "GRPO"),
        ratio(times, "authors", "GRPO"),
        f"{peaks['GRPO'] / 2**20:.1f}",
        f"{peaks['LaSeR'] / peaks['GRPO']:.4f}",
        f"{(peaks['LaSeR'] - peaks['GRPO']) / 2**20:+.1f}",
        f"{peaks['authors'] / peaks['GRPO']:.4f}",
    ]

    rollout_row = None
    if rollouts:
        rollout_times = interleaved(
            {
                "GRPO": lambda: rollout(grpo),
                "LaSeR-MSE": lambda: rollout(laser),
                "LaSeR-SWA": lambda: rollout(laser, self_rewarding_advantages=True),
                "SWA-forward": lambda: rollout(trainers["LaSeR-forward"], self_rewarding_advantages=True),
            },
            repeats,
        )
        step_times = {  # a whole step, rollout + loss step (repetitions paired by index)
            "GRPO": [a + b for a, b in zip(rollout_times["GRPO"], times["GRPO"], strict=True)],
            "LaSeR-SWA": [a + b for a, b in zip(rollout_times["LaSeR-SWA"], times["LaSeR"], strict=True)],
            "SWA-forward": [a + b for a, b in zip(rollout_times["SWA-forward"], times["LaSeR"], strict=True)],
        }
        rollout_row = [
            bench.name,
            length,
            batch_size,
            median_ms(rollout_times, "GRPO"),
            ratio(rollout_times, "LaSeR-MSE", "GRPO"),
            ratio(rollout_times, "LaSeR-SWA", "GRPO"),
            ratio(step_times, "LaSeR-SWA", "GRPO"),
            ratio(rollout_times, "SWA-forward", "GRPO"),
            ratio(step_times, "SWA-forward", "GRPO"),
        ]

    set_phase(laser, self_rewarding_advantages=False)
    difference = authors.laser_loss(batch)[1] - laser_reward_token_logps(laser, batch)
    checks = {
        "rows finished": int((batch["completion_ids"] == bench.eos_id).any(dim=1).sum()),
        "correct rows": int(batch["verifier_rewards"].sum()),
        "authors vs LaSeR log pi(z_c), max |diff|": difference.abs().max().item(),
    }
    return loss_row, rollout_row, checks


LOSS_HEADERS = [
    "model", "L", "B", "GRPO step (ms)", "LaSeR / GRPO", "authors / GRPO",
    "GRPO peak (MiB)", "LaSeR / GRPO peak", "LaSeR - GRPO (MiB)", "authors / GRPO peak",
]  # fmt: skip
ROLLOUT_HEADERS = [
    "model", "L", "B", "GRPO rollout (ms)", "LaSeR-MSE / GRPO", "LaSeR-SWA / GRPO", "SWA step / GRPO",
    "before: SWA / GRPO", "before: SWA step / GRPO",
]  # fmt: skip
SETTINGS = {  # model: [(L, B), ...]
    "quick": {"tiny": [(32, 8)], "mid": [(16, 4)], "smollm2": [(16, 4)]},
    "full": {"tiny": [(128, 8), (512, 8)], "mid": [(64, 4)], "smollm2": [(64, 8)]},
}


def main() -> None:
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    models = setup(args, full_repeats=5)
    settings = SETTINGS["quick" if args.quick else "full"]
    loss_rows, rollout_rows = [], []
    for name in models:
        bench = build_bench(name)
        print(describe(bench), flush=True)
        for length, batch_size in settings[name]:
            loss_row, rollout_row, checks = measure(bench, length, batch_size, args.repeats)
            print(format_checks(f"L={length} B={batch_size}", checks), flush=True)
            loss_rows.append(loss_row)
            rollout_rows.append(rollout_row)
    title = f"(median of {args.repeats}, 25-75% range)"
    print_table(f"Loss step, forward + backward {title}", LOSS_HEADERS, loss_rows)
    print_table(f"Rollout, _generate_and_score_completions {title}", ROLLOUT_HEADERS, rollout_rows)


if __name__ == "__main__":
    main()
