"""How well can the demo model learn to see its own errors? The self-verifier's supervised upper bound.

Samples K solutions per problem from a demo start model, labels them with the task's verifier, and
trains only LaSeR's class-balanced MSE on r_s (no policy loss, so nothing removes the errors while
the score learns), with Adam on batches drawn from the training problems' solutions; prints the
AUROC and F1 of r_s on those and on held-out problems' solutions as training goes. If a kind of
error stays at AUROC 0.5 here, RL with the same steps and learning rate will not teach the model's
last token to see it either;
docs/demo.md uses it to tell which slips a tiny model learns to see within the demo's budget.

    python -m benchmarks.verifiability --model demo_out/start     # a `laser demo` start model
    python -m benchmarks.verifiability [--num-layers 4]           # warm-starts one first (~2 min)
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from benchmarks.common import print_table
from laser_rl.core import class_balance_weights, reward_token_logps, self_reward_mse, self_reward_scores
from laser_rl.demo.pipeline import FULL
from laser_rl.demo.task import max_solution_length, sample_problems, verify
from laser_rl.demo.warmstart import DEFAULT, WarmStartSettings, warm_start
from laser_rl.generation import generate_with_scores
from laser_rl.metrics import self_verification_metrics
from laser_rl.scoring import eos_logprobs, last_token_logits, solution_ids
from laser_rl.testing import REWARD_TOKEN

HEADERS = ["step", "train AUROC", "train F1", "held-out AUROC", "held-out F1"]
QUICK_WARM_START = WarmStartSettings(
    num_examples=64, max_steps=3, batch_size=8, learning_rate=1e-3, hidden_size=32, num_layers=1, num_heads=2
)


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model) if args.model else _warm_start(Path(scratch), args)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    reward_token_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    train, c_ref = _labelled_solutions(model, tokenizer, "train", args, reward_token_id)
    held_out, _ = _labelled_solutions(model, tokenizer, "test", args, reward_token_id)
    print(
        f"c_ref {c_ref:.2f}; train: {len(train[0])} solutions, {train[1].mean():.1%} right; "
        f"held-out: {len(held_out[0])} solutions, {held_out[1].mean():.1%} right",
        flush=True,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = random.Random(args.seed)
    rows = [_evaluate(model, tokenizer, 0, train, held_out, reward_token_id, c_ref, args.beta)]
    model.train()
    for step in range(1, args.steps + 1):
        batch = rng.sample(range(len(train[0])), min(args.batch_size, len(train[0])))
        labels = train[1][batch]
        logits = last_token_logits(model, tokenizer, [train[0][i] for i in batch])
        scores = self_reward_scores(reward_token_logps(logits, reward_token_id), c_ref, args.beta)
        finished = torch.ones_like(labels, dtype=torch.bool)
        loss = self_reward_mse(scores, labels, class_balance_weights(labels, finished), len(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0 or step == args.steps:
            rows.append(_evaluate(model, tokenizer, step, train, held_out, reward_token_id, c_ref, args.beta))
            print(f"  step {step}: loss {loss.item():.4f}, " + ", ".join(map(str, rows[-1][1:])), flush=True)
    title = f"Self-verification learned from labels alone ({args.steps} steps x {args.batch_size}, lr {args.lr:g})"
    print_table(title, HEADERS, rows)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a demo start model directory (default: warm-start one in a temp dir)")
    parser.add_argument("--num-layers", type=int, default=DEFAULT.num_layers, help="of the warm-started model")
    parser.add_argument("--problems", type=int, default=600, help="training problems")
    parser.add_argument("--held-out", type=int, default=150, help="held-out (test split) problems")
    parser.add_argument("--samples", type=int, default=16, help="solutions sampled per problem (temperature 1)")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--beta", type=float, default=FULL.self_reward_beta, help="beta_v (the demo's)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds), for smoke tests")
    args = parser.parse_args()
    if args.quick:
        args.problems, args.held_out, args.samples, args.steps, args.batch_size, args.eval_every = 8, 4, 2, 2, 8, 1
    return args


def _warm_start(scratch: Path, args: argparse.Namespace) -> Path:
    settings = QUICK_WARM_START if args.quick else replace(DEFAULT, num_layers=args.num_layers)
    return warm_start(scratch / "start", replace(settings, seed=args.seed))


Labelled = tuple[list[list[int]], torch.Tensor]  # prompt + response + EOS ids, (N,) verifier labels


def _labelled_solutions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    split: str,
    args: argparse.Namespace,
    reward_token_id: int,
) -> tuple[Labelled, float]:
    """Finished sampled solutions of one split as prompt + response + EOS ids, their verifier labels,
    and the mean log pi(z_c) over them (c_ref, as `laser calibrate` measures it)."""
    count = args.problems if split == "train" else args.held_out
    problems = sample_problems(count, split, seed=args.seed + 7)
    prompts = [p.prompt for p in problems]
    samples = generate_with_scores(
        model, tokenizer, prompts, args.samples, reward_token_id,
        max_new_tokens=max_solution_length() + 8, seed=args.seed, batch_size=128, progress=False,
    )  # fmt: skip
    sequences, labels, logps = [], [], []
    for problem, prompt, group in zip(problems, prompts, samples, strict=True):
        for sample in (s for s in group if s.finished):
            sequences.append(solution_ids(tokenizer, prompt, sample.text, tokenizer.eos_token_id))
            labels.append(verify(sample.text, problem.answer))
            logps.append(sample.reward_token_logp)
    return (sequences, torch.tensor(labels)), sum(logps) / max(len(logps), 1)


@torch.no_grad()
def _evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    step: int,
    train: Labelled,
    held_out: Labelled,
    reward_token_id: int,
    c_ref: float,
    beta: float,
) -> list[object]:
    model.eval()
    row: list[object] = [step]
    for sequences, labels in (train, held_out):
        logps = eos_logprobs(model, tokenizer, sequences, [reward_token_id], batch_size=256)[:, 0]
        metrics = self_verification_metrics(self_reward_scores(logps, c_ref, beta), labels)
        row += [f"{metrics['auroc']:.3f}", f"{metrics['f1']:.3f}"]
    model.train()
    return row


if __name__ == "__main__":
    main()
