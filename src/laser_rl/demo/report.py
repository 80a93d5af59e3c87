"""The demo's report: report.json with every number, report.md with the paper-style tables."""

from __future__ import annotations

import json
from pathlib import Path

from laser_rl.jsonl import write_text_atomically

MODELS = ("start", "grpo", "laser")


def write_demo_report(out_dir: Path, summary: dict) -> None:
    """report.json with every number and report.md with the paper-style tables."""
    write_text_atomically(out_dir / "report.json", json.dumps(summary, indent=2))
    models = summary["models"]
    lines = [
        "# laser demo",
        "",
        f"c_ref = {summary['c_ref']['mean']:.2f} +- {summary['c_ref']['std']:.2f} "
        f"(start model, {summary['c_ref']['n']} solutions)",
        "",
        "## Reasoning and self-verification",
        "",
        "| model | accuracy | pass@K | self-verif. F1 | AUROC | acc. on correct | acc. on wrong | ECE |"
        " trivial judge F1 | trivial judge AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        result = models[name]
        verification = result["self_verification"]["all"]
        pass_at_k = result["pass_at_k"][max(result["pass_at_k"], key=int)]
        judge = result["trivial_judge"]
        cells = [result["accuracy"], pass_at_k, verification["f1"], verification["auroc"]]
        cells += [verification["acc_correct"], verification["acc_wrong"], verification["ece"]]
        cells += [judge["f1"], judge["auroc"]]
        lines.append(f"| {name} | " + " | ".join(format_number(c) for c in cells) + " |")
    lines += [
        "",
        "## Inference-time scaling (accuracy at N samples)",
        "",
        "| model | N | majority | self-reward weighted | best-of-N | pass@N |",
        "|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        scaling = models[name]["scaling"]
        for i, n in enumerate(scaling["n"]):
            cells = [scaling[key][i] for key in ("majority", "weighted_majority", "best_of_n", "pass_at_n")]
            lines.append(f"| {name} | {n} | " + " | ".join(format_number(c) for c in cells) + " |")
    lines += [
        "",
        "## Self-verification by kind of mistake",
        "",
        "Wrong solutions holding each kind (one may hold several), the share its score judges wrong, and the"
        " AUROC of the score between the right solutions and them.",
        "",
        "| model | mistake | wrong solutions | judged wrong | AUROC |",
        "|---|---|---|---|---|",
    ]
    for name in MODELS:
        for kind, numbers in models[name]["by_error_kind"].items():
            cells = [format_number(numbers["judged_wrong"]), format_number(numbers["auroc"])]
            lines.append(f"| {name} | {kind} | {numbers['count']} | " + " | ".join(cells) + " |")
    lines += ["", "Per-model reports and plots: " + ", ".join(f"eval/{name}/report.md" for name in MODELS), ""]
    write_text_atomically(out_dir / "report.md", "\n".join(lines))


def format_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
