"""A held-out probe of self-verification during training.

The batch metrics (`laser/auroc`, ...) see only the solutions the policy writes at that step: once RL
has removed a kind of mistake, they no longer say whether the score would see it. A probe is a fixed set
of graded solutions (the output of `laser generate` then `laser grade`: `problem`, `responses`,
`acc_list`, and `finished` / `response_token_ids` where present) scored by the model every k steps: the
same yardstick from the first step to the last, for LaSeR's score and for any GRPO model's.

- `load_probe`: a file's solutions as token sequences and labels; a bad file is one line, before training.
- `probe_metrics`: AUROC, F1 (and its two accuracies), ECE and the classes' mean scores, in one pass.
- `SelfVerificationProbe`: the TrainerCallback that runs it at step 0 and every `every` steps and logs
  `probe/*` through the trainer's logs (TRL's metrics), so that report_to and log_history carry it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from laser_rl.core import self_reward_scores
from laser_rl.errors import LaserInputError
from laser_rl.jsonl import check_responses, read_jsonl
from laser_rl.metrics import auroc, expected_calibration_error, self_verification_metrics
from laser_rl.prompts import record_prompts
from laser_rl.scoring import eos_logprobs, solution_ids

PROBE_FIELDS = {"problem": str, "responses": list, "acc_list": list}


@dataclass(frozen=True)
class Probe:
    """Finished, judged solutions to score.

    Attributes:
        sequences: N lists of ids, prompt + response + EOS.
        labels: (N,) verifier rewards r_v in [0, 1]; > 0.5 counts as correct.
    """

    sequences: list[list[int]]
    labels: torch.Tensor


def load_probe(
    path: str | Path, tokenizer: PreTrainedTokenizerBase, eos_token_id: int, template: str, chat: bool
) -> Probe:
    """The finished, judged solutions of a graded JSONL file, prompted as training prompts them.

    A response's sampled ids are used where the record has them (`response_token_ids`), else its text
    encoded again (see `scoring.solution_ids`). Truncated responses and those no verifier could judge
    (`acc_list` null) are left out.

    Raises:
        LaserInputError: naming the file (and line) for a missing file, a missing or mistyped field,
            an `acc_list` that does not pair with `responses`, or a probe without a right or a wrong
            solution (AUROC and F1 need both).
    """
    records = read_jsonl(path, PROBE_FIELDS, check=_check_labels)
    probe = probe_solutions(tokenizer, records, record_prompts(tokenizer, records, template, chat), eos_token_id)
    correct = int((probe.labels > 0.5).sum())
    if correct == 0 or correct == len(probe.labels):
        kind = "right" if correct == 0 else "wrong"
        raise LaserInputError(f"{path}: no {kind} finished solution; a probe needs both to measure AUROC and F1")
    return probe


def probe_solutions(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[dict], prompts: Sequence[str], eos_token_id: int
) -> Probe:
    """The finished, judged solutions of graded records, each after its rendered prompt."""
    sequences, labels = [], []
    for record, prompt in zip(records, prompts, strict=True):
        responses = record.get("response_token_ids") or record["responses"]
        finished = record.get("finished") or [True] * len(responses)
        for response, done, label in zip(responses, finished, record["acc_list"], strict=True):
            if done and label is not None:
                sequences.append(solution_ids(tokenizer, prompt, response, eos_token_id))
                labels.append(float(label))
    return Probe(sequences, torch.tensor(labels))


def _check_labels(record: dict) -> str | None:
    problem = check_responses(record)
    if problem:
        return problem
    labels = record["acc_list"]
    if len(labels) != len(record["responses"]):
        return f"field 'acc_list' must have one reward per response ({len(record['responses'])})"
    if not all(label is None or (type(label) in (int, float) and 0 <= label <= 1) for label in labels):
        return "field 'acc_list' must hold rewards in [0, 1] (or null where no verifier could judge)"
    return None


@torch.no_grad()
def probe_metrics(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    probe: Probe,
    reward_token_id: int,
    c_ref: float | None,
    beta_v: float,
    batch_size: int = 16,
) -> dict[str, float]:
    """Self-verification of `model` on the probe: one forward per solution, untempered.

    AUROC needs no c_ref (it ranks log pi(z_c)); F1, its accuracies, ECE and the mean scores do,
    and are NaN while c_ref is unknown (c_ref: auto before the first batch).

    Returns:
        auroc, f1, acc_correct, acc_wrong, ece, score_correct_mean, score_wrong_mean.
    """
    was_training = model.training
    model.eval()
    try:
        logps = eos_logprobs(model, tokenizer, probe.sequences, [reward_token_id], batch_size)[:, 0]
    finally:
        model.train(was_training)
    correct = probe.labels > 0.5
    metrics = {"auroc": auroc(logps, correct)}
    if c_ref is None:
        nan = math.nan
        return metrics | dict.fromkeys(("f1", "acc_correct", "acc_wrong", "ece", "score_correct_mean",
                                        "score_wrong_mean"), nan)  # fmt: skip
    scores = self_reward_scores(logps, c_ref, beta_v)
    verification = self_verification_metrics(scores, probe.labels)
    return metrics | {
        "f1": verification["f1"],
        "acc_correct": verification["acc_correct"],
        "acc_wrong": verification["acc_wrong"],
        "ece": expected_calibration_error(scores, correct)[0],
        "score_correct_mean": scores[correct].mean().item(),
        "score_wrong_mean": scores[~correct].mean().item(),
    }


class SelfVerificationProbe(TrainerCallback):
    """Scores a probe at the start of training and every `every` optimizer steps; logs `probe/<metric>`.

    Works with any GRPOTrainer (LaSeR's score, or the same readout of a plain GRPO model for
    comparison). Every process scores the whole probe (it is small), so the logged values need no
    gathering; under DeepSpeed ZeRO-3 that forward is collective, as every process runs it.

    Args:
        trainer: the trainer whose model is probed and whose logs receive the metrics.
        probe: the solutions (see `load_probe`).
        reward_token_id: id of z_c.
        c_ref: c_ref, or a function giving it when the probe runs (None while unknown).
        beta_v: beta_v of the scores.
        every: steps between probes; None: the trainer's logging steps.
    """

    def __init__(
        self,
        trainer: Trainer,
        probe: Probe,
        reward_token_id: int,
        c_ref: float | Callable[[], float | None] | None,
        beta_v: float,
        every: int | None = None,
        batch_size: int = 16,
    ):
        if every is not None and every < 1:
            raise ValueError(f"probe every {every} steps: must be >= 1")
        self.trainer, self.probe, self.reward_token_id = trainer, probe, reward_token_id
        self.c_ref, self.beta_v, self.every, self.batch_size = c_ref, beta_v, every, batch_size

    def measure(self) -> dict[str, float]:
        """The probe's metrics under the trainer's current weights, as `probe/<name>`."""
        c_ref = self.c_ref() if callable(self.c_ref) else self.c_ref
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        tokenizer = self.trainer.processing_class
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor's text tokenizer
        values = probe_metrics(model, tokenizer, self.probe, self.reward_token_id, c_ref, self.beta_v, self.batch_size)
        return {f"probe/{name}": value for name, value in values.items() if not math.isnan(value)}

    def on_train_begin(self, args, state, control, **kwargs):
        self.every = self.every or state.logging_steps
        if state.global_step == 0:
            self.trainer.log(self.measure())

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            # Into TRL's step metrics, logged with this step's others (a log is forced here).
            metrics = self.trainer._metrics["train"]
            for name, value in self.measure().items():
                metrics[name].append(value)
            control.should_log = True
        return control


def probe_history(log_history: Sequence[dict]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of each `probe/<metric>` in a trainer's log_history."""
    history: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for key, value in entry.items():
            if key.startswith("probe/"):
                history.setdefault(key.removeprefix("probe/"), []).append((entry["step"], value))
    return history
