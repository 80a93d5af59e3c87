"""Evaluation report on sampled, graded and self-scored solutions: first the numbers, then the files.

`evaluate_records` turns records into a JSON-ready dict of numbers (NaN written as None), and
`write_report` renders such a dict as report.json, report.md and PNG plots; the demo can compose
several of these dicts. `build_report` does both.

Records use the authors' JSONL format, one per problem with K solutions: problem, answer,
responses (K,), pred_answers (K,) str | None, acc_list (K,) verifier rewards in [0, 1] (> 0.5 is
correct; None where the verifier could not judge), self_rewarding_scores (K,) float | None, optional
finished (K,) bool, optional answer_clusters (K,) int (-1 where pred_answers is None).

A solution the verifier could not judge is left out of the accuracy, the self-verification metrics,
the reliability diagram and the score histogram (none of them has a truth to compare it with); in
pass@k and the scaling curves, which need every sample of a problem, it counts as not correct.

A solution without a score (None, or not finished: truncated solutions have no last token) counts
as scored 0, i.e. judged wrong, as in the paper's self-rewarding advantages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from laser_rl.errors import LaserInputError
from laser_rl.jsonl import write_atomically
from laser_rl.metrics import (
    auroc,
    bootstrap_interval,
    expected_calibration_error,
    pass_at_k,
    self_verification_metrics,
)
from laser_rl.voting import Equivalent, ProblemSamples, cluster_answers, scaling_curves

PER_SOLUTION_FIELDS = ("responses", "pred_answers", "acc_list", "self_rewarding_scores")
SCALING_COLUMNS = {
    "majority": "majority",
    "weighted_majority": "weighted majority",
    "best_of_n": "best-of-N",
    "pass_at_n": "pass@N",
}


def _doublings(k: int) -> list[int]:
    """1, 2, 4, ... up to k, with k itself last."""
    ns = [2**i for i in range(k.bit_length()) if 2**i < k]
    return [*ns, k]


def _problem_samples(
    index: int, record: dict, equivalent: Equivalent | None
) -> tuple[ProblemSamples, np.ndarray, np.ndarray, np.ndarray]:
    """Check one record and read it.

    Returns:
        samples (scores: None and unfinished -> 0; not correct where unjudged), rewards (K,) float (NaN
        where unjudged), answered (K,) bool, scored (K,) bool.
    """
    missing = [field for field in PER_SOLUTION_FIELDS if field not in record]
    if missing:
        raise LaserInputError(f"record {index}: missing field(s) {', '.join(missing)}")
    k = len(record["responses"])
    for field in (*PER_SOLUTION_FIELDS, "finished", "answer_clusters"):
        if field in record and len(record[field]) != k:
            raise LaserInputError(f"record {index}: {field} has {len(record[field])} items, responses has {k}")
    if k == 0:
        raise LaserInputError(f"record {index}: no responses")
    answered = np.array([answer is not None for answer in record["pred_answers"]])
    if "answer_clusters" in record:
        cluster_ids = np.asarray(record["answer_clusters"], dtype=np.int64)
        if not np.array_equal(cluster_ids >= 0, answered):
            raise LaserInputError(f"record {index}: answer_clusters must be -1 exactly where pred_answers is None")
    elif equivalent is None:
        raise LaserInputError(f"record {index}: no answer_clusters, and no equivalence check to compute them")
    else:
        cluster_ids = np.asarray(cluster_answers(record["pred_answers"], equivalent), dtype=np.int64)
    finished = np.asarray(record.get("finished", [True] * k), dtype=bool)
    scored = finished & np.array([score is not None for score in record["self_rewarding_scores"]])
    scores = np.array(
        [score if ok else 0.0 for score, ok in zip(record["self_rewarding_scores"], scored, strict=True)], dtype=float
    )
    rewards = np.array([np.nan if reward is None else reward for reward in record["acc_list"]], dtype=float)
    return ProblemSamples(cluster_ids, rewards > 0.5, scores), rewards, answered, scored


def _verification(scores: np.ndarray, rewards: np.ndarray, threshold: float, num_bins: int) -> tuple[dict, dict]:
    """Self-verification metrics with ECE added, and the reliability-diagram data."""
    scores_t, rewards_t = torch.from_numpy(scores), torch.from_numpy(rewards)
    ece, reliability = expected_calibration_error(scores_t, rewards_t > 0.5, num_bins)
    return {**self_verification_metrics(scores_t, rewards_t, threshold), "ece": ece}, reliability


def nan_to_none(value: Any) -> Any:
    """The same nested dicts and lists, with NaN replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nan_to_none(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def evaluate_records(
    problems: Sequence[dict],
    *,
    equivalent: Equivalent | None = None,
    num_subsets: int = 100,
    seed: int = 0,
    threshold: float = 0.5,
    num_bins: int = 10,
    histogram_bins: int = 20,
) -> dict[str, Any]:
    """Every number of the report, as a JSON-ready dict (NaN as None).

    Args:
        problems: records, see the module docstring.
        equivalent: answer equivalence check, needed for records without answer_clusters.
        num_subsets: random subsets per problem and N for the scaling curves.
        seed: seeds those subsets.
        threshold: scores above it mean "judged correct".
        num_bins: bins of the calibration error and reliability diagram.
        histogram_bins: bins of the score histograms.

    Returns:
        num_problems, num_solutions, num_answered, num_scored, num_judged; accuracy (mean reward over the
        judged solutions); pass_at_k {"k": value} for k = 1, 2, 4, ..., K (K: the fewest samples of a
        problem); self_verification and reliability, each {"all": ..., "answered": ...} (the
        latter over solutions with an extracted answer); self_verification_ci95 {"f1", "auroc": [low, high]},
        95% bootstrap intervals over resampled problems, all judged solutions; score_histogram (edges, correct, wrong:
        over scored, judged solutions); scaling (see `voting.scaling_curves`, N = 1, 2, 4, ..., K); settings.
    """
    if not problems:
        raise LaserInputError("no records to evaluate")
    parsed = [_problem_samples(index, record, equivalent) for index, record in enumerate(problems)]
    samples, *columns = zip(*parsed, strict=True)
    rewards, answered, scored = map(np.concatenate, columns)
    scores = np.concatenate([sample.scores for sample in samples])
    judged = ~np.isnan(rewards)
    correct = rewards > 0.5

    ks = _doublings(min(len(sample.correct) for sample in samples))
    pass_at = {
        str(k): float(np.mean([pass_at_k(len(s.correct), int(s.correct.sum()), k) for s in samples])) for k in ks
    }
    verification_all, reliability_all = _verification(scores[judged], rewards[judged], threshold, num_bins)
    verification_answered, reliability_answered = _verification(
        scores[answered & judged], rewards[answered & judged], threshold, num_bins
    )
    # 95% intervals of F1 and AUROC over resamples of the problems (their solutions are not independent)
    groups = torch.cat([torch.full((len(sample.correct),), i) for i, sample in enumerate(samples)])
    judged_t = torch.from_numpy(judged)
    statistics = {
        "f1": lambda s, r: self_verification_metrics(s, r, threshold)["f1"],
        "auroc": lambda s, r: auroc(s, r > 0.5),
    }
    interval = {
        name: list(bootstrap_interval(statistic, torch.from_numpy(scores)[judged_t],
                                      torch.from_numpy(rewards)[judged_t], groups[judged_t], seed=seed))
        for name, statistic in statistics.items()
    }  # fmt: skip
    histogram = scored & judged  # it splits the scores by truth
    edges = np.histogram_bin_edges(scores[histogram], bins=histogram_bins)
    return nan_to_none(
        {
            "num_problems": len(samples),
            "num_solutions": len(rewards),
            "num_answered": int(answered.sum()),
            "num_scored": int(scored.sum()),
            "num_judged": int(judged.sum()),
            "accuracy": float(rewards[judged].mean()) if judged.any() else math.nan,
            "pass_at_k": pass_at,
            "self_verification": {"all": verification_all, "answered": verification_answered},
            "self_verification_ci95": interval,
            "reliability": {"all": reliability_all, "answered": reliability_answered},
            "score_histogram": {
                "edges": edges.tolist(),
                "correct": np.histogram(scores[histogram & correct], edges)[0].tolist(),
                "wrong": np.histogram(scores[histogram & ~correct], edges)[0].tolist(),
            },
            "scaling": scaling_curves(samples, ks, num_subsets, seed),
            "settings": {"threshold": threshold, "num_bins": num_bins, "num_subsets": num_subsets, "seed": seed},
        }
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def format_number(value: float | None) -> str:
    """Three decimals, or n/a for a metric that is undefined (None)."""
    return "n/a" if value is None else f"{value:.3f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table: the header, a |---| rule, then one line per row of cells (as text)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in rows])


def render_markdown(results: dict[str, Any], title: str = "LaSeR evaluation") -> str:
    """report.md's text: accuracy, pass@k, self-verification and scaling tables, then the plots."""
    verification = results["self_verification"]
    scaling = results["scaling"]
    settings = results["settings"]
    sections = [
        f"# {title}",
        markdown_table(
            ["problems", "solutions", "with an answer", "scored", "judged", "accuracy (%)"],
            [
                [
                    str(results["num_problems"]),
                    str(results["num_solutions"]),
                    str(results["num_answered"]),
                    str(results["num_scored"]),
                    str(results["num_judged"]),
                    _percent(results["accuracy"]),
                ]
            ],
        ),
        "## pass@k (%)",
        markdown_table(["k", *results["pass_at_k"]], [["pass@k", *map(_percent, results["pass_at_k"].values())]]),
        f"## Self-verification (judged correct: score > {settings['threshold']}; no score counts as 0)",
        markdown_table(
            ["solutions", "acc_correct (%)", "acc_wrong (%)", "F1 (%)", "AUROC", "ECE"],
            [
                [
                    name,
                    *map(_percent, (metrics["acc_correct"], metrics["acc_wrong"], metrics["f1"])),
                    *map(format_number, (metrics["auroc"], metrics["ece"])),
                ]
                for name, metrics in (("all", verification["all"]), ("with an answer", verification["answered"]))
            ],
        ),
        f"## Test-time scaling (N of the K samples, up to {settings['num_subsets']} subsets per problem)",
        markdown_table(
            ["N", *(f"{label} (%)" for label in SCALING_COLUMNS.values())],
            [
                [str(n), *(_percent(scaling[column][i]) for column in SCALING_COLUMNS)]
                for i, n in enumerate(scaling["n"])
            ],
        ),
        "![test-time scaling](scaling.png)",
        "![self-reward scores](score_histogram.png)",
        "![reliability diagram](reliability.png)",
    ]
    return "\n\n".join(sections) + "\n"


def _plot_scaling(results: dict[str, Any]) -> Figure:
    scaling = results["scaling"]
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    for column, label in SCALING_COLUMNS.items():
        ax.plot(scaling["n"], [100 * value for value in scaling[column]], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="N (samples per problem)", ylabel="accuracy (%)", title="Test-time scaling")
    ax.legend()
    return fig


def _plot_score_histogram(results: dict[str, Any]) -> Figure:
    histogram = results["score_histogram"]
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    for name in ("correct", "wrong"):
        ax.stairs(histogram[name], histogram["edges"], fill=True, alpha=0.5, label=f"{name} solutions")
    ax.axvline(results["settings"]["threshold"], color="black", linestyle="--", linewidth=1)
    ax.set(xlabel="self-reward score r_s", ylabel="solutions", title="Scores of scored solutions")
    ax.legend()
    return fig


def _plot_reliability(results: dict[str, Any]) -> Figure:
    reliability = results["reliability"]["all"]
    edges = reliability["bin_edges"]
    filled = [i for i, count in enumerate(reliability["count"]) if count > 0]
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    ax.bar(
        [edges[i] for i in filled],
        [reliability["accuracy"][i] for i in filled],
        width=[edges[i + 1] - edges[i] for i in filled],
        align="edge",
        edgecolor="black",
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
    ece = format_number(results["self_verification"]["all"]["ece"])
    ax.set(xlabel="clipped score", ylabel="share correct", xlim=(0, 1), ylim=(0, 1), title=f"ECE {ece}")
    ax.legend()
    return fig


def write_report(results: dict[str, Any], out_dir: Path, title: str = "LaSeR evaluation") -> None:
    """Write report.json, report.md, scaling.png, score_histogram.png and reliability.png to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text_files = {
        "report.json": json.dumps(results, indent=2, allow_nan=False) + "\n",
        "report.md": render_markdown(results, title),
    }
    for name, text in text_files.items():
        write_atomically(out_dir / name, lambda file, text=text: file.write(text.encode()))
    plots = {
        "scaling.png": _plot_scaling,
        "score_histogram.png": _plot_score_histogram,
        "reliability.png": _plot_reliability,
    }
    for name, plot in plots.items():
        figure = plot(results)
        write_atomically(out_dir / name, lambda file, figure=figure: figure.savefig(file, format="png"))


def build_report(
    problems: Sequence[dict],
    out_dir: Path,
    *,
    equivalent: Equivalent | None = None,
    num_subsets: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate_records` (with these options, the rest at their defaults), then `write_report`.

    Returns:
        The results dict, as written to report.json.
    """
    results = evaluate_records(problems, equivalent=equivalent, num_subsets=num_subsets, seed=seed)
    write_report(results, out_dir)
    return results
