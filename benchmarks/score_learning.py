"""Is the score limited by what the model can learn to see, or by how many labelled solutions it sees?

From a demo run's start model (`laser demo --model smollm2-135m-instruct --out DIR`, or the tiny one):

1. a fixed pool of the start model's own solutions to training problems (right and wrong, counted by
   kind of mistake), and the demo's probe: its solutions to held-out problems (`DIR/start/probe.jsonl`,
   sampled here if the demo has not yet);
2. where the self-reward MSE's gradient goes at the start: z_c's row of the embedding matrix (tied to the
   LM head on SmolLM2) against the rest of the body, and alpha x its norm against the policy gradient's
   (GRPO's, estimated on the pool's groups with group-normalised advantages);
3. the ceiling and the speed: for each learning rate and beta_v, the start model trained on the MSE alone
   (the library's class-balanced loss, AdamW, constant rate) over the pool, the probe's AUROC and F1
   every few steps, against steps and solutions seen;
4. beside them, the probe curves of the demo's own LaSeR and GRPO runs (their `log_history.json`), which
   see fresh rollouts of 1 policy step each.

Each curve is written to --out as soon as it is complete; a rerun skips what is there.

    python -m benchmarks.score_learning --demo demo_out --out runs/score_learning
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from benchmarks.common import print_table
from laser_rl.core import class_balance_weights, reward_token_logps, self_reward_mse, self_reward_scores
from laser_rl.demo.errors import error_kinds
from laser_rl.demo.judge import fit_logistic
from laser_rl.demo.pipeline import PROBE_SAMPLES, PROMPT_TEMPLATE, probe_path, sample_graded, write_probe
from laser_rl.demo.task import Problem, sample_problems
from laser_rl.jsonl import read_jsonl, write_jsonl_atomic
from laser_rl.metrics import auroc, self_verification_metrics
from laser_rl.optim import scale_row_updates
from laser_rl.probe import Probe, load_probe, probe_history, probe_metrics, probe_solutions
from laser_rl.prompts import record_prompts
from laser_rl.report import format_number
from laser_rl.scoring import last_token_logits

POOL_SEED_OFFSET = 7  # the pool's problems: another draw of the training split than RL's and calibration's


def load_pool(
    demo: Path, out: Path, problems: int, tokenizer, settings: dict, c_ref: dict
) -> tuple[list[dict], Probe]:
    """The start model's graded solutions to `problems` training problems (cached in out/pool.jsonl)."""
    path = out / "pool.jsonl"
    if not path.is_file():
        chosen = sample_problems(problems, "train", seed=settings["seed"] + POOL_SEED_OFFSET)
        records = sample_graded(demo / "start", chosen, PROBE_SAMPLES, settings["seed"] + POOL_SEED_OFFSET,
                                c_ref["reward_token"], c_ref["mean"], settings["self_reward_beta"])  # fmt: skip
        write_jsonl_atomic(path, records)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return records, load_probe(path, tokenizer, tokenizer.eos_token_id, PROMPT_TEMPLATE, False)


def mistake_counts(records: list[dict]) -> dict[str, int]:
    """Finished solutions by kind of mistake ("right" for none)."""
    counts: dict[str, int] = {}
    for record in records:
        problem = Problem(*map(int, record["problem"].split("+")))
        for response, done, reward in zip(record["responses"], record["finished"], record["acc_list"], strict=True):
            if done:
                kinds = ["right"] if reward else sorted(error_kinds(problem, response)) or ["wrong answer only"]
                for kind in kinds:
                    counts[kind] = counts.get(kind, 0) + 1
    return counts


def mse_loss(model, tokenizer, sequences, labels, token_id, c_ref, beta_v, level_weight=1.0) -> torch.Tensor:
    """The class-balanced self-reward MSE of a batch of finished solutions (the trainer's loss, alone)."""
    logps = reward_token_logps(last_token_logits(model, tokenizer, sequences), token_id)
    scores = self_reward_scores(logps, c_ref, beta_v)
    finished = torch.ones_like(labels, dtype=torch.bool)
    return self_reward_mse(scores, labels, class_balance_weights(labels, finished), len(labels), level_weight)


def policy_gradient_loss(model, tokenizer, records: list[dict]) -> torch.Tensor:
    """-mean_i A_i mean_t log pi(y_it): GRPO's on-policy surrogate over whole groups (truncated solutions
    count as wrong), each record's advantages normalised within it."""
    sequences, response_masks, advantages = [], [], []
    for record, text in zip(records, record_prompts(tokenizer, records, PROMPT_TEMPLATE, chat=False), strict=True):
        prompt = tokenizer(text, add_special_tokens=False).input_ids
        rewards = torch.tensor(record["acc_list"], dtype=torch.float32)
        advantages += ((rewards - rewards.mean()) / (rewards.std() + 1e-4)).tolist()
        for ids in record["response_token_ids"]:
            sequences.append(prompt + ids)
            response_masks.append([0] * len(prompt) + [1] * len(ids))
    batch = tokenizer.pad({"input_ids": sequences}, padding_side="right", return_tensors="pt")
    mask = tokenizer.pad({"input_ids": response_masks}, padding_side="right", return_tensors="pt")["input_ids"]
    mask = (mask[:, 1:] * batch["attention_mask"][:, 1:]).float()  # the pad id may be 1: the attention mask decides
    logits = model(**batch).logits[:, :-1].float()
    token_logps = logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return -(torch.tensor(advantages) * (token_logps * mask).sum(1) / mask.sum(1)).mean()


def gradient_split(
    model: PreTrainedModel, tokenizer, records, token_id, c_ref, beta_v, alpha, variants: list[tuple[float, float]]
) -> list:
    """Norms of the MSE's (for each (initial score, level weight)) and the policy gradient's parts at the start
    model, over the same 16 problems; and alpha x the MSE's norm against the sum's."""
    records = records[:16]
    prompts = record_prompts(tokenizer, records, PROMPT_TEMPLATE, chat=False)
    solutions = probe_solutions(tokenizer, records, prompts, tokenizer.eos_token_id)
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight

    def gradients(loss: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]

    def norms(grads: list[torch.Tensor]) -> list[str]:
        row = grads[[p is embedding for p in model.parameters()].index(True)][token_id].norm().item()
        total = torch.sqrt(sum(g.pow(2).sum() for g in grads)).item()
        return [f"{total:.3g}", f"{row:.3g}", f"{(total**2 - row**2) ** 0.5:.3g}", f"{row**2 / total**2:.1%}"]

    policy = gradients(policy_gradient_loss(model, tokenizer, records))
    rows = [["policy gradient", *norms(policy), ""]]
    for initial, level_weight in variants:
        mse = mse_loss(model, tokenizer, solutions.sequences, solutions.labels, token_id, c_ref - initial / beta_v,
                       beta_v, level_weight)  # fmt: skip
        grads = gradients(mse)
        both = torch.sqrt(sum((p + alpha * g).pow(2).sum() for p, g in zip(policy, grads, strict=True))).item()
        share = alpha * torch.sqrt(sum(g.pow(2).sum() for g in grads)).item() / both
        rows.append([f"MSE, initial score {initial:g}, level weight {level_weight:g}", *norms(grads), f"{share:.3f}"])
    model.zero_grad()
    rows.append(["(embeddings tied to the LM head)" if tied else "(LM head untied)", "", "", "", "", ""])
    return rows


@torch.no_grad()
def eos_states(model: PreTrainedModel, tokenizer, sequences: list[list[int]], token_id: int, batch: int = 32):
    """(N, H) the last layer's hidden state at each solution's EOS, what z_c's row of the LM head reads, and (N,)
    the log-sum-exp of every other token's logit there: log pi(z_c) = w.h - logaddexp(that, w.h)."""
    states, others = [], []
    for start in range(0, len(sequences), batch):
        rows = {"input_ids": sequences[start : start + batch]}
        padded = tokenizer.pad(rows, padding_side="left", return_tensors="pt")
        positions = (padded["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        output = model(**padded, position_ids=positions, output_hidden_states=True, logits_to_keep=1)
        states.append(output.hidden_states[-1][:, -1].float())
        logits = output.logits[:, -1].float()
        logits[:, token_id] = -math.inf
        others.append(logits.logsumexp(-1))
    return torch.cat(states), torch.cat(others)


def linear_probe_auroc(train: torch.Tensor, train_labels, test: torch.Tensor, test_labels) -> float:
    """Held-out AUROC of a logistic regression on standardised EOS states: how well correctness can be read
    from the representation z_c's row sees, without changing the body."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    classifier = fit_logistic((train - mean) / std, (train_labels > 0.5).float())
    with torch.no_grad():
        return auroc(classifier((test - mean) / std).squeeze(1), test_labels > 0.5)


def train_readout_only(
    row, pool_states, probe_states, pool, probe, c_ref, beta_v, level_weight, lr, steps, batch, every, seed
):
    """z_c's row alone trained on the MSE (AdamW at `lr`) over the start model's cached EOS states: the
    trainer's loss with a frozen body, in seconds."""
    row = torch.nn.Parameter(row.clone())
    optimizer = torch.optim.AdamW([row], lr=lr, weight_decay=0.0)
    rng, order, curve = random.Random(seed), [], []

    def scores(states):
        hidden, others = states
        logit = hidden @ row
        return self_reward_scores(logit - torch.logaddexp(others, logit), c_ref, beta_v)

    for step in range(steps + 1):
        if step % every == 0:
            with torch.no_grad():
                probe_scores = scores(probe_states)
            verification = self_verification_metrics(probe_scores, probe.labels)
            curve.append({"step": step, "solutions": step * batch, **verification})
        if step == steps:
            break
        if len(order) < batch:
            order += rng.sample(range(len(pool.labels)), len(pool.labels))
        rows, order = order[:batch], order[batch:]
        labels = pool.labels[rows]
        batch_scores = scores((pool_states[0][rows], pool_states[1][rows]))
        weights = class_balance_weights(labels, torch.ones_like(labels, dtype=torch.bool))
        loss = self_reward_mse(batch_scores, labels, weights, len(labels), level_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return curve


@dataclass(frozen=True)
class MseOnly:
    """One MSE-only run: the optimizer's learning rate, beta_v, the score every solution starts at, z_c's row's
    and the body's learning-rate multipliers, the weight of the MSE's level part."""

    lr: float
    beta_v: float
    initial_score: float = 0.0
    row_scale: float = 1.0
    body_lr_scale: float = 1.0
    level_weight: float = 1.0

    @property
    def name(self) -> str:
        name = f"MSE only, lr {self.lr:g}, beta_v {self.beta_v:g}"
        name += f", initial score {self.initial_score:g}" if self.initial_score else ""
        name += f", z_c row lr x{self.row_scale:g}" if self.row_scale != 1 else ""
        name += f", body lr x{self.body_lr_scale:g}" if self.body_lr_scale != 1 else ""
        return name + (f", level weight {self.level_weight:g}" if self.level_weight != 1 else "")


def train_mse_only(
    start: Path,
    tokenizer,
    pool: Probe,
    probe: Probe,
    token_id: int,
    c_ref: float,
    run: MseOnly,
    steps: int,
    batch: int,
    every: int,
    seed: int,
) -> list[dict]:
    """The start model trained on the MSE alone; the probe's metrics at step 0 and every `every` steps."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    head = model.get_output_embeddings().weight
    body = [p for p in model.parameters() if p is not head]
    groups = [{"params": [head], "lr": run.lr}, {"params": body, "lr": run.lr * run.body_lr_scale}]
    optimizer = torch.optim.AdamW(groups, lr=run.lr, weight_decay=0.0)
    scale_row_updates(optimizer, head, token_id, run.row_scale)
    c_ref = c_ref - run.initial_score / run.beta_v
    order, rng = [], random.Random(seed)
    curve = []
    for step in range(steps + 1):
        if step % every == 0:
            values = probe_metrics(model, tokenizer, probe, token_id, c_ref, run.beta_v)
            curve.append({"step": step, "solutions": step * batch, **values})
            print(f"    step {step}: AUROC {values['auroc']:.3f}, F1 {format_number(values['f1'])}", flush=True)
        if step == steps:
            break
        if len(order) < batch:  # epochs over the pool, reshuffled
            order += rng.sample(range(len(pool.sequences)), len(pool.sequences))
        rows, order = order[:batch], order[batch:]
        model.train()
        loss = mse_loss(model, tokenizer, [pool.sequences[i] for i in rows], pool.labels[rows], token_id, c_ref,
                        run.beta_v, run.level_weight)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return curve


def demo_curves(demo: Path) -> dict[str, list[dict]]:
    """The probe curves of the demo's LaSeR and GRPO runs, by step and by solutions seen."""
    settings = json.loads((demo / "settings.json").read_text())
    per_step = settings["prompts_per_step"] * settings["num_generations"]
    curves = {}
    for name in ("laser", "grpo"):
        path = demo / name / "log_history.json"
        if path.is_file():
            history = probe_history(json.loads(path.read_text()))
            steps = [step for step, _ in history.get("auroc", [])]
            curves[f"demo {name}"] = [
                {"step": step, "solutions": step * per_step, **{k: dict(v).get(step) for k, v in history.items()}}
                for step in steps
            ]
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="a demo run's output directory (its start/ model)")
    parser.add_argument("--out", type=Path, required=True, help="where the pool and the curves are written")
    parser.add_argument("--pool-problems", type=int, default=192, help="training problems of the pool (4 samples)")
    parser.add_argument("--lr", type=float, nargs="*", default=[1e-5, 1e-4], help="MSE-only runs (none: skip them)")
    parser.add_argument("--beta", type=float, nargs="+", default=[0.1, 0.5], help="beta_v")
    parser.add_argument(
        "--initial-score",
        type=float,
        nargs="+",
        default=[0.0],
        help="the score every solution starts at: c_ref is moved by -initial_score / beta_v (0: the paper's c_ref; "
        "0.5: the class-balanced MSE's best constant, so the first steps see only the difference)",
    )
    parser.add_argument(
        "--row-scale", type=float, nargs="+", default=[1.0], help="learning-rate multipliers of z_c's LM-head row"
    )
    parser.add_argument(
        "--body-lr-scale", type=float, nargs="+", default=[1.0],
        help="learning-rate multipliers of every weight but the LM head (0: the read-out alone learns)",
    )  # fmt: skip
    parser.add_argument(
        "--readout-lr",
        type=float,
        nargs="+",
        default=[1e-3, 1e-2, 1e-1],
        help="learning rates of the read-out-only runs (z_c's row alone, on cached EOS states)",
    )
    parser.add_argument("--readout-steps", type=int, default=200)
    parser.add_argument("--readout-every", type=int, default=25)
    parser.add_argument(
        "--level-weight", type=float, nargs="+", default=[1.0],
        help="weights of the MSE's level part (1: the paper's MSE; see core.self_reward_mse)",
    )  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.1, help="alpha, for the gradient shares")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32, help="solutions per MSE step (the demo's RL batch)")
    parser.add_argument("--every", type=int, default=10, help="steps between two probes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = args.demo / "start"
    tokenizer = AutoTokenizer.from_pretrained(start)
    c_ref = json.loads((start / "c_ref.json").read_text())
    token_id = tokenizer.convert_tokens_to_ids(c_ref["reward_token"])
    settings = json.loads((args.demo / "settings.json").read_text())
    if not probe_path(args.demo).is_file():
        problems = settings.get("probe_problems") or 64
        write_probe(args.demo, problems, settings["seed"], c_ref, settings["self_reward_beta"])
    probe = load_probe(probe_path(args.demo), tokenizer, tokenizer.eos_token_id, PROMPT_TEMPLATE, False)
    records, pool = load_pool(args.demo, args.out, args.pool_problems, tokenizer, settings, c_ref)
    print(f"start model {start}: z_c {c_ref['reward_token']}, c_ref {c_ref['mean']:.2f}", flush=True)
    probe_mistakes = mistake_counts(read_jsonl(probe_path(args.demo)))
    print_table(
        "Pool (training problems) and probe (held-out problems): finished solutions by kind of mistake",
        ["kind", "pool", "probe"],
        [[kind, count, probe_mistakes.get(kind, 0)]
         for kind, count in sorted(mistake_counts(records).items(), key=lambda item: -item[1])],
    )  # fmt: skip

    split_variants = list(itertools.product(args.initial_score, args.level_weight))
    key = f"beta{args.beta[0]:g}-alpha{args.alpha:g}-" + "-".join(f"{i:g}_{w:g}" for i, w in split_variants)
    split_path = args.out / f"gradient_split-{key}.json"
    if not split_path.is_file():
        model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
        rows = gradient_split(model, tokenizer, records, token_id, c_ref["mean"], args.beta[0], args.alpha,
                              split_variants)  # fmt: skip
        split_path.write_text(json.dumps(rows))
    print_table(
        f"Gradient norms at the start model (beta_v {args.beta[0]}, alpha {args.alpha}, 16 problems x 4 solutions)",
        ["loss", "norm", "z_c's row", "the rest", "row's share of the squared norm", "alpha x MSE / the sum"],
        json.loads(split_path.read_text()),
    )

    states_path = args.out / "eos_states.pt"
    if not states_path.is_file():
        model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).eval()
        states = {name: eos_states(model, tokenizer, solutions.sequences, token_id)
                  for name, solutions in (("pool", pool), ("probe", probe))}  # fmt: skip
        states["row"] = model.get_output_embeddings().weight[token_id].detach().clone()
        torch.save(states, states_path)
    states = torch.load(states_path)
    ceiling = linear_probe_auroc(states["pool"][0], pool.labels, states["probe"][0], probe.labels)
    print(
        "\nLogistic regression on the start model's EOS hidden states (fitted on the pool, held-out AUROC on the"
        f" probe): {ceiling:.3f}",
        flush=True,
    )
    rows = []
    variants = itertools.product(args.readout_lr, args.beta, args.initial_score, args.level_weight)
    for lr, beta_v, initial, level_weight in variants:
        curve = train_readout_only(states["row"], states["pool"], states["probe"], pool, probe,
                                   c_ref["mean"] - initial / beta_v, beta_v, level_weight, lr, args.readout_steps,
                                   args.batch, args.readout_every, args.seed)  # fmt: skip
        for point in curve:
            rows.append([f"{lr:g}", beta_v, initial, level_weight, point["step"], point["solutions"],
                         format_number(point["auroc"]), format_number(point["f1"])])  # fmt: skip
    print_table(
        "z_c's row alone trained on the MSE over the start model's EOS states (the body frozen): probe AUROC, F1",
        ["row lr", "beta_v", "initial score", "level weight", "step", "solutions seen", "AUROC", "F1"],
        rows,
    )

    curves_path = args.out / "curves.json"
    curves = json.loads(curves_path.read_text()) if curves_path.is_file() else {}
    grid = (args.lr, args.beta, args.initial_score, args.row_scale, args.body_lr_scale, args.level_weight)
    for run in itertools.starmap(MseOnly, itertools.product(*grid)):
        name = run.name
        if name in curves:
            continue
        print(f"  {name}", flush=True)
        begin = time.time()
        curve = train_mse_only(start, tokenizer, pool, probe, token_id, c_ref["mean"], run, args.steps, args.batch,
                               args.every, args.seed)  # fmt: skip
        curves[name] = curve
        curves[name][-1]["seconds"] = time.time() - begin
        curves_path.write_text(json.dumps(curves, indent=1))  # each curve as soon as it is complete
    curves |= demo_curves(args.demo)
    rows = []
    for name, curve in curves.items():
        for point in curve:
            rows.append([name, point["step"], point["solutions"], format_number(point["auroc"]),
                         format_number(point.get("f1")), format_number(point.get("score_correct_mean")),
                         format_number(point.get("score_wrong_mean"))])  # fmt: skip
    print_table(
        f"Held-out probe ({len(probe.labels)} solutions, {int((probe.labels > 0.5).sum())} right) against training",
        ["run", "step", "solutions seen", "AUROC", "F1", "mean score right", "mean score wrong"],
        rows,
    )


if __name__ == "__main__":
    main()
