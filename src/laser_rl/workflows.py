"""Whole-file work behind the commands: generate, score, grade, and the solutions calibration reads.

Each function takes what changes its output and nothing else; the `laser` commands parse flags and
call these. Generation and scoring write through `ResumableWriter` (an interrupted call, made again
with the same arguments, goes on where it stopped), grading writes its output atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from laser_rl.generation import (
    Sample,
    eos_token_ids,
    generate_with_scores,
    generate_with_scores_vllm,
    load_model,
    load_vllm,
)
from laser_rl.grading import MathGrader, extract_last_boxed
from laser_rl.jsonl import ResumableWriter, fingerprint
from laser_rl.llm_judge import JudgeArguments
from laser_rl.prompts import record_prompts
from laser_rl.scoring import ScoringSettings, record_logps, self_reward_score_list, solution_ids
from laser_rl.tokens import check_reward_token_unused
from laser_rl.verifiers import predicted_answer, resolve_verifier


@dataclass(frozen=True)
class Sampling:
    """How solutions are sampled. `batch_size` is part of it: problems are sampled in windows of
    `batch_size // n`, each seeded from its first row."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 8192
    seed: int = 0
    batch_size: int = 8


def generate_file(
    model: str,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[dict],
    out: str | Path,
    n: int,
    settings: ScoringSettings,
    sampling: Sampling,
    backend: str = "hf",
    source: str = "problems",
) -> list[dict]:
    """Sample `n` solutions per problem with their in-pass scores into `out`, resumably.

    Each output record is the problem's, plus `responses`, `finished`, `response_token_ids` (the
    sampled ids, EOS included when finished), `reward_token_logps` and `self_rewarding_scores`
    (None for truncated solutions). A call made again with the same arguments after an
    interruption redoes only the missing windows and writes the records an uninterrupted call writes.

    Args:
        model: a model folder or Hub id (see `laser_rl.models.resolve_model`).
        problems: records with a `problem` field; other fields are kept.
        settings: z_c, c_ref, beta_v and the prompt settings (`scoring.scoring_settings`).
        backend: "hf" (`generate_with_scores`) or "vllm" (`generate_with_scores_vllm`).
        source: what the problems came from, to name in the error when a prompt holds z_c.
    """
    prompts = record_prompts(tokenizer, problems, settings.prompt_template, settings.chat)
    check_reward_token_unused(tokenizer, settings.reward_token_id, prompts, source)
    sample = _sampler(model, tokenizer, n, settings.reward_token_id, sampling, backend)
    resume = {"model": model, "n": n, "backend": backend, **asdict(settings), **asdict(sampling)}
    resume["data_fingerprint"] = fingerprint(problems)
    per_window = max(1, sampling.batch_size // n)
    windows = [range(start, min(start + per_window, len(problems))) for start in range(0, len(problems), per_window)]
    with ResumableWriter(out, resume) as writer:
        todo = [window for window in windows if any(index not in writer.records for index in window)]
        for window in tqdm(todo, desc="generate", unit="batch"):
            samples = sample(prompts[window.start : window.stop], seed=(sampling.seed << 32) + window.start * n)
            for index, solutions in zip(window, samples, strict=True):
                if index not in writer.records:
                    writer.write(index, sampled_record(problems[index], solutions, settings))
        writer.finish()
    return [writer.records[index] for index in sorted(writer.records)]


def _sampler(
    model: str, tokenizer: PreTrainedTokenizerBase, n: int, reward_token_id: int, sampling: Sampling, backend: str
) -> Callable[..., list[list[Sample]]]:
    """prompts, seed -> n samples per prompt, with the chosen backend and sampling settings."""
    common = dict(
        n=n,
        reward_token_id=reward_token_id,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        max_new_tokens=sampling.max_new_tokens,
    )
    if backend == "vllm":
        return partial(generate_with_scores_vllm, load_vllm(model, sampling.seed), **common)
    return partial(
        generate_with_scores, load_model(model), tokenizer, batch_size=sampling.batch_size, progress=False, **common
    )


def sampled_record(problem: dict, samples: Sequence[Sample], settings: ScoringSettings) -> dict:
    """The problem's record plus its solutions, their sampled ids and in-pass scores (None where truncated)."""
    logps = [sample.reward_token_logp for sample in samples]
    return problem | {
        "responses": [sample.text for sample in samples],
        "finished": [sample.finished for sample in samples],
        "response_token_ids": [sample.token_ids for sample in samples],
        "reward_token_logps": logps,
        "self_rewarding_scores": self_reward_score_list(logps, settings.c_ref, settings.beta_v),
    }


def score_file(
    model: str,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    out: str | Path,
    settings: ScoringSettings,
    batch_size: int = 8,
) -> list[dict]:
    """Add `reward_token_logps` and `self_rewarding_scores` to records produced elsewhere, into `out`,
    resumably: the sampled ids where a record has them, else its responses' text (see
    `scoring.record_logps`); None for truncated responses."""
    prompts = record_prompts(tokenizer, records, settings.prompt_template, settings.chat)
    network = load_model(model)
    eos = eos_token_ids(network, tokenizer)[0]
    resume = {"model": model, **asdict(settings), "batch_size": batch_size, "input_fingerprint": fingerprint(records)}
    with ResumableWriter(out, resume) as writer:
        for index, (record, prompt) in enumerate(tqdm(list(zip(records, prompts, strict=True)), desc="score")):
            if index not in writer.records:
                logps = record_logps(network, tokenizer, record, prompt, settings.reward_token_id, eos, batch_size)
                scores = self_reward_score_list(logps, settings.c_ref, settings.beta_v)
                writer.write(index, record | {"reward_token_logps": logps, "self_rewarding_scores": scores})
        writer.finish()
    return [writer.records[index] for index in sorted(writer.records)]


def grade_records(records: Sequence[dict], block: int = 256) -> list[dict]:
    """The records with `pred_answers` (each response's last \\boxed{} answer, None if none) and
    `acc_list` (1.0 / 0.0 against the record's `answer`, math-verify equivalence, under a time limit)."""
    predictions = [[extract_last_boxed(response) for response in record["responses"]] for record in records]
    flat = [prediction for answers in predictions for prediction in answers]
    golds = [str(record["answer"]) for record, answers in zip(records, predictions, strict=True) for _ in answers]
    graded: list[float] = []
    # Blocks large enough to keep every worker busy, small enough for a progress bar.
    with MathGrader() as grader, tqdm(total=len(golds), desc="grade", unit="answer") as progress:
        for start in range(0, len(golds), block):
            graded += grader.grade(flat[start : start + block], golds[start : start + block])
            progress.update(len(graded) - progress.n)
    accuracies = iter(graded)
    return [
        record | {"pred_answers": answers, "acc_list": [next(accuracies) for _ in answers]}
        for record, answers in zip(records, predictions, strict=True)
    ]


# Fields of a record that hold one value per response: not passed to a verifier as the problem's columns.
_PER_RESPONSE_FIELDS = {
    "responses",
    "finished",
    "response_token_ids",
    "reward_token_logps",
    "self_rewarding_scores",
    "pred_answers",
    "acc_list",
    "answer_clusters",
}


def verify_records(
    records: Sequence[dict], spec: str, judge: JudgeArguments | None = None, block: int = 256
) -> list[dict]:
    """The records graded by verifier `spec` (see `laser_rl.verifiers`; `judge`: the judge's settings):
    `pred_answers` (the answer it reads, see `verifiers.predicted_answer`) and `acc_list` (its rewards in
    [0, 1], None where it cannot judge). `math` is `grade_records`, with its time limit. Each response is
    passed as a completion, with the record's `answer` and its other problem fields (e.g. `problem`,
    `choices`; None for a record without one) as the dataset columns, in calls of about `block`
    completions (the judge asks them concurrently)."""
    if spec == "math":
        return grade_records(records)
    verifier = resolve_verifier(spec, "--verifier", judge)
    graded: list[dict] = []
    for batch in _record_blocks(records, block):  # no progress bar: an error stays one line
        keys = sorted({key for record in batch for key in record if key not in _PER_RESPONSE_FIELDS})
        columns = {key: [record.get(key) for record in batch for _ in record["responses"]] for key in keys}
        rewards = iter(verifier([text for record in batch for text in record["responses"]], **columns))
        for record in batch:
            responses = record["responses"]
            answers = [predicted_answer(spec, response, record.get("choices")) for response in responses]
            graded.append(record | {"pred_answers": answers, "acc_list": [next(rewards) for _ in responses]})
    return graded


def _record_blocks(records: Sequence[dict], size: int) -> Iterator[list[dict]]:
    """Consecutive runs of records holding at least `size` responses each (the last one: what is left)."""
    batch: list[dict] = []
    for record in records:
        batch.append(record)
        if sum(len(row["responses"]) for row in batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def calibration_solutions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    prompts: Sequence[str],
    keep_out: int,
    n: int,
    sampling: Sampling,
) -> tuple[list[list[int]], list[str], int]:
    """prompt + solution + EOS ids of every finished solution, the solutions' texts, and how many
    truncated solutions were left out. The solutions are the records' responses (their sampled ids
    where they have them) where they have any, else `n` samples of the model per problem, with
    `keep_out` (z_c) never sampled."""
    eos = eos_token_ids(model, tokenizer)[0]
    sequences, texts, truncated = [], [], 0
    for record, prompt in zip(records, prompts, strict=True):
        finished = record.get("finished") or [True] * len(record.get("responses", []))
        given = record.get("response_token_ids") or record.get("responses", [])
        for text, response, done in zip(record.get("responses", []), given, finished, strict=True):
            if done:
                sequences.append(solution_ids(tokenizer, prompt, response, eos))
                texts.append(text)
            truncated += not done
    to_sample = [prompt for record, prompt in zip(records, prompts, strict=True) if "responses" not in record]
    if to_sample:
        sampled = generate_with_scores(model, tokenizer, to_sample, n, keep_out, **asdict(sampling))
        for prompt, samples in zip(to_sample, sampled, strict=True):
            done = [sample for sample in samples if sample.finished]
            sequences += [solution_ids(tokenizer, prompt, sample.token_ids, eos) for sample in done]
            texts += [sample.text for sample in done]
            truncated += len(samples) - len(done)
    return sequences, texts, truncated
