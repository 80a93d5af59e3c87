"""`laser demo`: LaSeR end to end on the embedded task, on a CPU, in minutes.

The start model is a tiny Qwen2 built on the spot (the default) or a real pretrained model
(`laser demo --model smollm2-135m-instruct`); everything after the warm start is the same.

Stages, each written to its own place under the output directory and skipped when already done
(so an interrupted demo resumes where it stopped):
1. warm start: the start model SFT-trained on worked additions (`start/`);
2. calibration: z_c (given, or the unused special token that ranks best, as `laser calibrate
   --suggest` ranks them) and c_ref = mean log pi(z_c | x, y, EOS) of the start model's own solutions;
3. LaSeR training (`laser/`) and plain GRPO from the same start, seed and budget (`grpo/`);
4. evaluation of the three models on the same test problems, K samples each (`eval/*.jsonl`), each
   trained model's in the process that trained it;
5. the report: report.md, report.json and plots.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer

from laser_rl.baselines import mean_token_logps, yes_probabilities
from laser_rl.config import LaserConfig
from laser_rl.demo.errors import score_by_error_kind
from laser_rl.demo.judge import length_format_judge
from laser_rl.demo.progress import TrainingProgress
from laser_rl.demo.report import MODELS, demo_targets, environment, solutions_seen, write_demo_report
from laser_rl.demo.task import Problem, exact_match_reward, max_solution_length, sample_problems, to_dataset, verify
from laser_rl.demo.warmstart import DEFAULT as DEFAULT_WARM_START
from laser_rl.demo.warmstart import QUICK as QUICK_WARM_START
from laser_rl.demo.warmstart import WarmStartSettings, warm_start
from laser_rl.generation import generate_with_scores
from laser_rl.grading import extract_last_boxed
from laser_rl.jsonl import write_jsonl_atomic, write_text_atomically
from laser_rl.metrics import cross_fitted_metrics
from laser_rl.model_settings import ModelSettings
from laser_rl.probe import SelfVerificationProbe, load_probe, probe_history
from laser_rl.prompts import record_prompts
from laser_rl.report import evaluate_records, format_number, nan_to_none, write_report
from laser_rl.scoring import (
    ScoringSettings,
    candidate_reward_tokens,
    solution_ids,
    suggest_reward_tokens,
    token_stats,
)
from laser_rl.testing import REWARD_TOKEN
from laser_rl.trainer import LaserGRPOTrainer, last_complete_checkpoint
from laser_rl.workflows import sampled_record


@dataclass(frozen=True)
class DemoSettings:
    """The budget of one demo run."""

    warm_start: WarmStartSettings
    rl_steps: int
    reasoning_warmup_steps: int
    self_reward_warmup_steps: int
    prompts_per_step: int
    num_generations: int
    learning_rate: float
    self_reward_beta: float
    self_reward_loss_coef: float
    calibration_problems: int
    eval_problems: int
    eval_samples: int
    seed: int = 0
    reward_token: str | None = REWARD_TOKEN  # None: the best-ranked unused special token of the start model
    # Held-out probe (laser_rl.probe): the start model's solutions to this many test-split problems, scored by
    # both trained models every probe_steps steps; 0 for none.
    probe_problems: int = 0
    probe_steps: int = 5
    # Steps between checkpoints of the RL stages (the last one kept), from which a killed run resumes.
    save_steps: int = 10
    # LaserConfig's fields of the same names: z_c's read-out row at its own learning rate, and the share of the
    # self-reward loss's gradient that reaches the body.
    reward_token_lr_scale: float = 1.0
    self_reward_body_grad_scale: float = 1.0
    self_reward_level_weight: float = 1.0
    self_reward_level_fit: float = 0.0
    # The score every solution starts at: c_ref is the start model's mean log pi(z_c) minus this / beta_v
    # (0: the paper; 0.5: the class-balanced MSE's best constant, so that no step is spent on the level).
    initial_score: float = 0.0


# The paper's beta_v = 0.1, at lr 3e-5. alpha weighs the self-verifier against the policy: at alpha = 1 the
# MSE's gradient is 30-70x the policy gradient's and holds the policy back until the score has learned; a small
# alpha leaves the score untrained by the time RL has removed the errors it could learn to see. Mean of seeds
# 0-2 (docs/demo.md), LaSeR accuracy / F1 / AUROC, GRPO accuracy 0.924: alpha 1.0 0.822 / 0.834 / 0.894,
# 0.5 0.892 / 0.798 / 0.852, 0.3 0.904 / 0.728 / 0.836. 0.5 keeps LaSeR within 0.02-0.05 of GRPO's accuracy.
FULL = DemoSettings(
    warm_start=DEFAULT_WARM_START,
    rl_steps=400,
    reasoning_warmup_steps=5,
    self_reward_warmup_steps=60,
    prompts_per_step=8,
    num_generations=8,
    learning_rate=3e-5,
    self_reward_beta=0.1,
    self_reward_loss_coef=0.5,
    calibration_problems=64,
    eval_problems=200,
    eval_samples=16,
    probe_problems=64,
    probe_steps=20,
    save_steps=50,
)
# A smoke run within 3 minutes on 2 cores (136 s measured): every stage and phase, too short to learn much.
QUICK = replace(
    FULL,
    warm_start=QUICK_WARM_START,
    rl_steps=40,
    self_reward_warmup_steps=15,
    calibration_problems=32,
    eval_problems=48,
    eval_samples=8,
    probe_problems=8,
    probe_steps=10,
    save_steps=10,
)

# SmolLM2-135M-Instruct from its PyPI wheel, fine-tuned on the same task: about 170 times the tiny model's
# parameters. In the first committed run (docs/results/smollm2-135m-instruct-paper-settings-seed0) an SFT step of 16
# examples took 5.9 s on two threads and an RL step of 4 prompts x 8 samples 34-38 s on one thread (Intel Xeon), so
# the 60-minute budget buys 60 SFT and 50 RL steps. Pretrained, it learns the format within those 60 steps, and the
# share of slipped solutions sets its start accuracy (0.504 there, at noise 0.5). z_c is the unused special token
# that calibration ranks best. With the paper's alpha = beta_v = 0.1 alone its score learned the level of the scores
# and not their difference (AUROC 0.62); beta_v 0.5, an initial score of 0.5, the MSE's level part at 0.01 and z_c's
# row at 1000 times the learning rate are what benchmarks/score_learning.py found to learn the difference
# (docs/real-model.md, section 6). lr 1e-5 and the paper's alpha, tau.
SMOLLM2 = DemoSettings(
    warm_start=WarmStartSettings(
        num_examples=960, max_steps=60, batch_size=16, learning_rate=1e-4, noise=0.5,
        base_model="smollm2-135m-instruct",
    ),
    rl_steps=50,
    reasoning_warmup_steps=0,
    self_reward_warmup_steps=15,
    prompts_per_step=4,
    num_generations=8,
    learning_rate=1e-5,
    self_reward_beta=0.5,
    self_reward_loss_coef=0.1,
    calibration_problems=32,
    eval_problems=100,
    eval_samples=8,
    reward_token=None,
    probe_problems=64,
    probe_steps=10,
    reward_token_lr_scale=1000.0,
    self_reward_level_weight=0.01,
    initial_score=0.5,
)  # fmt: skip
SMOLLM2_QUICK = replace(
    SMOLLM2,
    warm_start=replace(SMOLLM2.warm_start, num_examples=320, max_steps=20),
    rl_steps=6,
    self_reward_warmup_steps=3,
    calibration_problems=8,
    eval_problems=16,
    eval_samples=4,
    probe_problems=4,
    probe_steps=2,
    save_steps=2,
)
PRESETS = {"tiny": (FULL, QUICK), "smollm2-135m-instruct": (SMOLLM2, SMOLLM2_QUICK)}

# `Problem.prompt` as a template: the demo's models read the task's plain prompts, no chat template.
PROMPT_TEMPLATE = "Q: {problem}=\nA:\n"
# Room past the longest gold solution, so that a model that rambles is truncated rather than cut at its answer.
MAX_NEW_TOKENS = max_solution_length() + 8
# The warm start is the one stage that runs alone: two threads make it about 1.4x faster on 2 cores, and give
# the same weights as one up to rounding (bit-identical on AMD EPYC, not on Intel Xeon: tests/test_task.py);
# more threads than cores would stall it.
WARM_START_THREADS = 2
# Solutions per probe problem, and the probe's draw of the test split (another than the evaluation's).
PROBE_SAMPLES = 4
PROBE_SEED_OFFSET = 5


def override_settings(settings: DemoSettings, assignments: Sequence[str]) -> DemoSettings:
    """`settings` with the numbers of `--set FIELD=VALUE ...` changed (not the seed, which `--seed` sets).

    Raises `LaserInputError` naming the assignment that is malformed, unknown or of the wrong type.
    """
    from laser_rl.errors import LaserInputError

    numbers = {f.name: f.type for f in fields(DemoSettings) if f.type in ("int", "float") and f.name != "seed"}
    changes = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or name not in numbers:
            raise LaserInputError(f"--set {assignment}: expected FIELD=VALUE with FIELD one of {', '.join(numbers)}")
        try:
            changes[name] = int(value) if numbers[name] == "int" else float(value)
        except ValueError:
            article = "an" if numbers[name] == "int" else "a"
            raise LaserInputError(
                f"--set {assignment}: {name} takes {article} {numbers[name]}, got {value!r}"
            ) from None
    return replace(settings, **changes)


def run_demo(out_dir: Path, settings: DemoSettings, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) every stage; returns the report's numbers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = replace(settings, warm_start=replace(settings.warm_start, seed=settings.seed))
    _check_settings(out_dir, settings)

    start_dir = out_dir / "start"
    if not _done(start_dir):
        begin = time.time()
        torch.set_num_threads(min(WARM_START_THREADS, os.cpu_count() or 1))
        warm_start(start_dir, settings.warm_start)
        _mark_done(start_dir, {"seconds": time.time() - begin})
    log(f"[1/5] warm start: {start_dir} ({_stage_seconds(start_dir):.0f} s)")

    # One thread from here on: the tiny model gains little from more, and each of the two cores runs a model.
    torch.set_num_threads(1)
    c_ref = _calibrate(start_dir, settings)
    log(
        f"[2/5] calibration: z_c {c_ref['reward_token']}, c_ref = {c_ref['mean']:.2f} +- {c_ref['std']:.2f} "
        f"over {c_ref['n']} solutions"
    )

    if settings.probe_problems and not probe_path(out_dir).is_file():
        write_probe(out_dir, settings.probe_problems, settings.seed, c_ref, settings.self_reward_beta)
        log(f"[2/5] probe: {probe_path(out_dir)}")

    # LaSeR and GRPO train from the same start independently (each trainer seeds itself), then each is
    # evaluated in the process that trained it. With two cores they run side by side, one thread each, and
    # the start model is evaluated by whichever finishes first: the same models and samples as one after the
    # other. A model's samples are written last: without them it is still to be trained or evaluated.
    stages = [(name, out_dir, settings, c_ref) for name in ("laser", "grpo", "start")]
    pending = [stage for stage in stages if not _eval_path(out_dir, stage[0]).is_file()]
    if len(pending) > 1 and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in [pool.submit(_model_stage, *arguments) for arguments in pending]:
                future.result()
    else:
        for arguments in pending:
            _model_stage(*arguments)
    for name in ("laser", "grpo"):
        log(f"[3/5] {name} training: {out_dir / name} ({_stage_seconds(out_dir / name):.0f} s)")

    test_problems = sample_problems(settings.eval_problems, "test", seed=settings.seed + 1)
    torch.set_num_threads(min(WARM_START_THREADS, os.cpu_count() or 1))  # alone again: the free baselines' forwards
    results = {}
    for name in MODELS:
        records = _evaluate(out_dir / name, _eval_path(out_dir, name), test_problems, settings, c_ref)
        results[name] = evaluate_records(records, equivalent=_same_string, seed=settings.seed)
        results[name]["trivial_judge"] = length_format_judge(records)
        free_path = out_dir / "eval" / f"{name}.free_baselines.json"
        results[name]["free_baselines"] = _free_baselines(out_dir / name, records, free_path)
        results[name]["by_error_kind"] = score_by_error_kind(test_problems, records)
        write_report(results[name], out_dir / "eval" / name, title=f"laser demo: {name} model")
        accuracy, f1 = results[name]["accuracy"], results[name]["self_verification"]["all"]["f1"]
        log(f"[4/5] eval {name}: accuracy {accuracy:.3f}, self-verification F1 {format_number(f1)}")

    summary = {"settings": asdict(settings), "environment": environment(), "c_ref": c_ref, "models": results}
    histories = {name: json.loads((out_dir / name / "log_history.json").read_text()) for name in ("laser", "grpo")}
    batch_size = settings.prompts_per_step * settings.num_generations
    summary["solutions_seen"] = {name: solutions_seen(history, batch_size) for name, history in histories.items()}
    if settings.probe_problems:
        summary["probe"] = {name: probe_history(history) for name, history in histories.items()}
    summary["targets"] = demo_targets(results)
    write_demo_report(out_dir, summary)
    log(f"[5/5] report: {out_dir / 'report.md'}")
    return summary


def _model_stage(name: str, out_dir: Path, settings: DemoSettings, c_ref: dict) -> None:
    """Train `name` (unless it is the start model or already trained), then sample its test solutions.

    Runs in a worker process as well as in the demo's own.
    """
    torch.set_num_threads(1)
    model_dir = out_dir / name
    if not _done(model_dir):
        begin = time.time()
        _train(name, out_dir / "start", model_dir, settings, c_ref)
        _mark_done(model_dir, {"seconds": time.time() - begin})
        for checkpoint in model_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):  # only needed to resume: weights and Adam
            shutil.rmtree(checkpoint)
    test_problems = sample_problems(settings.eval_problems, "test", seed=settings.seed + 1)
    _evaluate(model_dir, _eval_path(out_dir, name), test_problems, settings, c_ref)


def _train(name: str, start_dir: Path, model_dir: Path, settings: DemoSettings, c_ref: dict):
    """LaSeR or plain GRPO from the start model: same data, seed, budget and sampling. Checkpoints every
    `save_steps` steps (the last kept) and resumes from the last complete one, to the same weights."""
    problems = sample_problems(settings.rl_steps * settings.prompts_per_step, "train", seed=settings.seed + 2)
    probe = probe_path(start_dir.parent) if settings.probe_problems else None
    common = dict(
        output_dir=str(model_dir),
        use_cpu=True,
        bf16=False,
        seed=settings.seed,
        max_steps=settings.rl_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=MAX_NEW_TOKENS,
        temperature=1.0,
        top_k=0,
        activation_checkpointing=False,  # TRL turns it on; a model this small needs no memory saving
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=1,
        report_to="none",
        logging_steps=max(1, settings.rl_steps // 20),
    )
    checkpoint = last_complete_checkpoint(model_dir) if model_dir.is_dir() else None
    if checkpoint and json.loads(Path(checkpoint, TRAINER_STATE_NAME).read_text())["global_step"] >= settings.rl_steps:
        # Stopped after the last step's checkpoint: that is the trained model (resuming would train one step more).
        _finish(name, Path(checkpoint), model_dir, settings, c_ref)
        return
    model = AutoModelForCausalLM.from_pretrained(start_dir)
    tokenizer = AutoTokenizer.from_pretrained(start_dir)
    arguments = dict(
        model=model, reward_funcs=exact_match_reward, train_dataset=to_dataset(problems), processing_class=tokenizer
    )
    if name == "laser":
        args = LaserConfig(
            **common,
            reward_token=c_ref["reward_token"],
            c_ref=c_ref["mean"],
            self_reward_initial_score=settings.initial_score,
            self_reward_beta=settings.self_reward_beta,
            self_reward_loss_coef=settings.self_reward_loss_coef,
            reasoning_warmup_steps=settings.reasoning_warmup_steps,
            self_reward_warmup_steps=settings.self_reward_warmup_steps,
            reward_token_lr_scale=settings.reward_token_lr_scale,
            self_reward_level_weight=settings.self_reward_level_weight,
            self_reward_level_fit=settings.self_reward_level_fit,
            self_reward_body_grad_scale=settings.self_reward_body_grad_scale,
            probe_file=str(probe) if probe else None,
            probe_steps=settings.probe_steps,
        )
        trainer = LaserGRPOTrainer(args=args, **arguments)
    else:
        trainer = GRPOTrainer(args=GRPOConfig(**common), **arguments)
    metrics = ("reward", "laser/auroc", "probe/auroc") if name == "laser" else ("reward", "probe/auroc")
    TrainingProgress.attach(trainer, f"{name} training", metrics, position=("laser", "grpo").index(name))
    if probe and name == "grpo":  # GRPO's own score, read the same way, for comparison (after the bar: it logs)
        solutions = load_probe(probe, tokenizer, tokenizer.eos_token_id, PROMPT_TEMPLATE, False)
        token_id = tokenizer.convert_tokens_to_ids(c_ref["reward_token"])
        trainer.add_callback(SelfVerificationProbe(
            trainer, solutions, token_id, scoring_c_ref(c_ref, settings), settings.self_reward_beta,
            settings.probe_steps,
        ))  # fmt: skip
    trainer.train(resume_from_checkpoint=checkpoint)
    _finish(name, Path(last_complete_checkpoint(model_dir)), model_dir, settings, c_ref)


def _finish(name: str, checkpoint: Path, model_dir: Path, settings: DemoSettings, c_ref: dict) -> None:
    """The trained model (the last checkpoint, written at the last step), its settings and its log into
    `model_dir`."""
    AutoModelForCausalLM.from_pretrained(checkpoint).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(model_dir)
    carried = _carried_settings(c_ref, settings)
    trained = ModelSettings.read(checkpoint)  # LaSeR's trainer saves the c_ref it ends with (a fitted level moves it)
    if trained.c_ref is not None:
        carried = replace(carried, c_ref=trained.c_ref)
    carried.write(model_dir)
    log_history = json.loads((checkpoint / TRAINER_STATE_NAME).read_text())["log_history"]
    (model_dir / "log_history.json").write_text(json.dumps(log_history, indent=1))


def probe_path(out_dir: Path) -> Path:
    return out_dir / "start" / "probe.jsonl"


def write_probe(out_dir: Path, problems: int, seed: int, c_ref: dict, beta_v: float) -> None:
    """The start model's graded solutions to held-out (test-split) problems, for `laser_rl.probe`."""
    chosen = sample_problems(problems, "test", seed=seed + PROBE_SEED_OFFSET)
    records = sample_graded(out_dir / "start", chosen, PROBE_SAMPLES, seed + PROBE_SEED_OFFSET, c_ref["reward_token"],
                            c_ref["mean"], beta_v)  # fmt: skip
    write_jsonl_atomic(probe_path(out_dir), records)


def scoring_c_ref(c_ref: dict, settings: DemoSettings) -> float:
    """The c_ref the demo's models are scored with: the start model's mean log pi(z_c), moved so that a
    solution of the start model scores `settings.initial_score`."""
    return _carried_settings(c_ref, settings).c_ref


def _calibrate(start_dir: Path, settings: DemoSettings) -> dict:
    """z_c and c_ref from the start model's own solutions to training problems (cached in start/)."""
    path = start_dir / "c_ref.json"
    if path.is_file():
        return json.loads(path.read_text())
    problems = sample_problems(settings.calibration_problems, "train", seed=settings.seed + 3)
    model = AutoModelForCausalLM.from_pretrained(start_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(start_dir)
    prompts = [p.prompt for p in problems]
    token = settings.reward_token
    # Sampling keeps z_c (or, while it is still to be chosen, one candidate) out of the solutions.
    keep_out = (
        tokenizer.convert_tokens_to_ids(token)
        if token
        else next(iter(candidate_reward_tokens(tokenizer, prompts).values()))
    )
    samples = generate_with_scores(
        model, tokenizer, prompts, 4, keep_out, max_new_tokens=MAX_NEW_TOKENS, seed=settings.seed, batch_size=64
    )
    finished = [(prompt, s) for prompt, group in zip(prompts, samples, strict=True) for s in group if s.finished]
    if token:
        best = token_stats(token, keep_out, torch.tensor([s.reward_token_logp for _, s in finished]))
    else:
        eos = tokenizer.eos_token_id
        sequences = [solution_ids(tokenizer, prompt, s.token_ids, eos) for prompt, s in finished]
        best = suggest_reward_tokens(model, tokenizer, sequences, [*prompts, *(s.text for _, s in finished)])[0]
    c_ref = {"mean": best.mean, "std": best.std, "n": best.count, "reward_token": best.token}
    path.write_text(json.dumps(c_ref))
    _carried_settings(c_ref, settings).write(start_dir)
    return c_ref


def _carried_settings(c_ref: dict, settings: DemoSettings) -> ModelSettings:
    """The laser_config.json of each demo model, so that `laser generate --model DIR/NAME` scores and prompts
    it as the demo does."""
    return ModelSettings.scored_with(
        c_ref["mean"],
        settings.self_reward_beta,
        settings.initial_score,
        reward_token=c_ref["reward_token"],
        prompt_template=PROMPT_TEMPLATE,
        chat=False,
    )


def _evaluate(model_dir: Path, path: Path, problems, settings: DemoSettings, c_ref: dict) -> list[dict]:
    """K samples per test problem with in-pass scores, graded; cached as JSONL in the authors' format."""
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines()]
    records = sample_graded(model_dir, problems, settings.eval_samples, settings.seed + 4, c_ref["reward_token"],
                            ModelSettings.read(model_dir).c_ref, settings.self_reward_beta)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(path, records)
    return records


def sample_graded(
    model_dir: Path, problems: Sequence[Problem], n: int, seed: int, reward_token: str, c_ref: float, beta_v: float
) -> list[dict]:
    """n solutions of each problem by the model, with in-pass scores and grades: records in the authors'
    format plus the sampled ids (`response_token_ids`), as `laser generate` and `laser grade` write them."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    reward_token_id = tokenizer.convert_tokens_to_ids(reward_token)
    scoring = ScoringSettings(reward_token, reward_token_id, c_ref, beta_v, PROMPT_TEMPLATE, chat=False)
    samples = generate_with_scores(
        model, tokenizer, [p.prompt for p in problems], n, reward_token_id,
        max_new_tokens=MAX_NEW_TOKENS, seed=seed, batch_size=128,
    )  # fmt: skip
    return [
        sampled_record({"problem": problem.text, "answer": problem.answer}, group, scoring)
        | {
            "pred_answers": [extract_last_boxed(s.text) for s in group],
            "acc_list": [verify(s.text, problem.answer) for s in group],
        }
        for problem, group in zip(problems, samples, strict=True)
    ]


def _free_baselines(model_dir: Path, records: list[dict], path: Path) -> dict:
    """Self-certainty and the model's own yes/no verdict on its finished test solutions (cached in `path`):
    AUROC, and F1 at a threshold fitted on the other half of the problems (as the trivial judge is), with
    each signal's cost in CPU seconds per solution."""
    if path.is_file():
        return json.loads(path.read_text())
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    record_texts = record_prompts(tokenizer, records, PROMPT_TEMPLATE, chat=False)
    rows = [
        (index % 2, record_texts[index], text, ids, correct > 0.5)
        for index, record in enumerate(records)
        for text, ids, done, correct in zip(record["responses"], record["response_token_ids"], record["finished"],
                                            record["acc_list"], strict=True)
        if done
    ]  # fmt: skip
    half, prompts, texts, responses, labels = zip(*rows, strict=True)
    prompt_ids = [tokenizer(prompt, add_special_tokens=False).input_ids for prompt in prompts]
    signals = {
        "self_certainty": lambda: mean_token_logps(model, tokenizer, prompt_ids, responses),
        "verify_prompt": lambda: yes_probabilities(
            model, tokenizer, [p + t for p, t in zip(prompts, texts, strict=True)]
        ),
    }
    results = {}
    for name, signal in signals.items():
        begin = time.process_time()
        scores = signal()
        seconds = (time.process_time() - begin) / len(rows)
        metrics = cross_fitted_metrics(scores, torch.tensor(labels), torch.tensor(half, dtype=torch.bool))
        results[name] = nan_to_none(metrics) | {"seconds_per_solution": seconds}
    write_text_atomically(path, json.dumps(results, indent=1))
    return results


def _eval_path(out_dir: Path, name: str) -> Path:
    return out_dir / "eval" / f"{name}.jsonl"


def _same_string(pairs: list[tuple[str, str]]) -> list[bool]:
    """Answers of the task are integers: equal strings are equal answers."""
    return [a == b for a, b in pairs]


def _done(directory: Path) -> bool:
    return (directory / "stage_done.json").is_file()


def _mark_done(directory: Path, info: dict) -> None:
    (directory / "stage_done.json").write_text(json.dumps(info))


def _stage_seconds(directory: Path) -> float:
    return json.loads((directory / "stage_done.json").read_text())["seconds"]


def _check_settings(out_dir: Path, settings: DemoSettings) -> None:
    """Refuse to resume into a directory made with other settings."""
    from laser_rl.errors import LaserInputError

    path = out_dir / "settings.json"
    current = json.dumps(asdict(settings), sort_keys=True)
    if path.is_file() and path.read_text() != current:
        raise LaserInputError(f"{out_dir}: made by a demo with other settings; use another --out or delete it")
    path.write_text(current)
