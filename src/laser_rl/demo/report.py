"""The demo's report: report.json with every number, report.md with the paper-style tables."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from laser_rl.jsonl import write_atomically, write_text_atomically
from laser_rl.report import format_number, markdown_table

MODELS = ("start", "grpo", "laser")
DISPLAY_NAMES = {"start": "start (SFT)", "grpo": "GRPO", "laser": "LaSeR"}


def solutions_seen(log_history: Sequence[dict], batch_size: int) -> dict[str, int]:
    """The solutions a model trained on, and about how many were wrong: each logged mean `reward` (the
    verifier's, in [0, 1]) times the solutions of the steps its log entry covers."""
    total, wrong, previous = 0, 0.0, 0
    for entry in log_history:
        if "reward" in entry:
            solutions = (entry["step"] - previous) * batch_size
            total, wrong, previous = total + solutions, wrong + (1 - entry["reward"]) * solutions, entry["step"]
    return {"solutions": total, "wrong": round(wrong)}


def _training_line(settings: dict, seen: dict) -> str:
    """The budget and the LaSeR settings both models trained with (`laser demo --set` changes them), and the
    solutions each trained on."""
    levers = {
        "alpha": "self_reward_loss_coef", "beta_v": "self_reward_beta", "initial score": "initial_score",
        "level weight": "self_reward_level_weight", "level fit": "self_reward_level_fit",
        "z_c row lr scale": "reward_token_lr_scale", "body grad scale": "self_reward_body_grad_scale",
    }  # fmt: skip
    return (
        f"Trained {settings['rl_steps']} steps of {settings['prompts_per_step']} x {settings['num_generations']} "
        f"solutions at lr {settings['learning_rate']:g}, warm-ups {settings['reasoning_warmup_steps']} + "
        f"{settings['self_reward_warmup_steps']}; LaSeR: "
        + ", ".join(f"{label} {settings[key]:g}" for label, key in levers.items() if key in settings)
        + "."
        + "".join(
            f" {DISPLAY_NAMES[name]} trained on {counts['solutions']:,} solutions, about {counts['wrong']:,} wrong."
            for name, counts in seen.items()
        )
    )


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
        _training_line(summary["settings"], summary.get("solutions_seen", {})),
        "",
        "Run with " + ", ".join(f"{name} {version}" for name, version in summary["environment"].items()) + ".",
        "The same seed gives the same numbers with the same software on the same CPU model; other floating-point",
        "kernels give other numbers (docs/demo.md has the spread over seeds).",
        "",
        "## Reasoning and self-verification",
        "",
    ]
    rows = []
    for name in MODELS:
        result = models[name]
        verification = result["self_verification"]["all"]
        pass_at_k = result["pass_at_k"][max(result["pass_at_k"], key=int)]
        judge = result["trivial_judge"]
        interval = result.get("self_verification_ci95", {})
        cells = [format_number(result["accuracy"]), format_number(pass_at_k)]
        cells += [format_number(verification["f1"]), _interval(interval.get("f1"))]
        cells += [format_number(verification["auroc"]), _interval(interval.get("auroc"))]
        cells += [format_number(verification[key]) for key in ("acc_correct", "acc_wrong", "ece")]
        rows.append([name, *cells, format_number(judge["f1"]), format_number(judge["auroc"])])
    header = ["model", "accuracy", "pass@K", "self-verif. F1", "F1 95% CI", "AUROC", "AUROC 95% CI"]
    header += ["acc. on correct", "acc. on wrong", "ECE"]
    lines.append(markdown_table([*header, "trivial judge F1", "trivial judge AUROC"], rows))
    targets = summary["targets"]
    rows = [[t["target"], t["measured"], "yes" if t["met"] else "no"] for t in targets]
    lines += ["", "## The demo's targets", "", markdown_table(["target", "measured", "met"], rows)]
    lines += ["", f"{targets_met(targets)} met.", "", "## Inference-time scaling (accuracy at N samples)", ""]
    rows = []
    for name in MODELS:
        scaling = models[name]["scaling"]
        for i, n in enumerate(scaling["n"]):
            cells = [scaling[key][i] for key in ("majority", "weighted_majority", "best_of_n", "pass_at_n")]
            rows.append([name, n, *map(format_number, cells)])
    header = ["model", "N", "majority", "self-reward weighted", "best-of-N", "pass@N"]
    lines += [markdown_table(header, rows), ""]
    lines += [
        "## Self-verification by kind of mistake",
        "",
        "Wrong solutions holding each kind (one may hold several), the share its score judges wrong, and the"
        " AUROC of the score between the right solutions and them.",
        "",
    ]
    rows = [
        [name, kind, numbers["count"], format_number(numbers["judged_wrong"]), format_number(numbers["auroc"])]
        for name in MODELS
        for kind, numbers in models[name]["by_error_kind"].items()
    ]
    lines.append(markdown_table(["model", "mistake", "wrong solutions", "judged wrong", "AUROC"], rows))
    if all("free_baselines" in models[name] for name in MODELS):
        lines += ["", *free_baselines_section(models)]
    if summary.get("probe"):
        lines += ["", *probe_section(summary["probe"])]
        figure = plot_probe(summary["probe"])
        write_atomically(out_dir / "probe.png", lambda file: figure.savefig(file, format="png"))
    lines += ["", "Per-model reports and plots: " + ", ".join(f"eval/{name}/report.md" for name in MODELS), ""]
    write_text_atomically(out_dir / "report.md", "\n".join(lines))


def _interval(bounds: list | None) -> str:
    """A bootstrap interval as text: "0.61-0.74", or n/a."""
    if not bounds or None in bounds:
        return "n/a"
    return f"{bounds[0]:.2f}-{bounds[1]:.2f}"


def free_baselines_section(models: dict) -> list[str]:
    """report.md's lines on the signals each model gives without training for them, beside LaSeR's score."""
    rows, beaten = [], []
    for name in MODELS:
        score = models[name]["self_verification"]["all"]
        cells = [format_number(score["auroc"]), format_number(score["f1"]), "one decoding step, in the same pass"]
        rows.append([name, "LaSeR score r_s (threshold 0.5)", *cells])
        for signal, label in (("self_certainty", "self-certainty"), ("verify_prompt", 'P("yes"), asked')):
            baseline = models[name]["free_baselines"][signal]
            cost = f"{1000 * baseline['seconds_per_solution']:.0f} ms CPU a solution, after the fact"
            rows.append([name, label, format_number(baseline["auroc"]), format_number(baseline["f1"]), cost])
            if name == "laser" and (baseline["auroc"] or 0) > (score["auroc"] or 0):
                beaten.append(label)
    verdict = (
        f"On the LaSeR model, {' and '.join(beaten)} beat{'s' if len(beaten) == 1 else ''} LaSeR's score in AUROC."
        if beaten
        else "On the LaSeR model, LaSeR's score has the highest AUROC."
    )
    return [
        "## Against the signals a model gives for free",
        "",
        'Self-certainty: the solution\'s mean token log-prob. P("yes"): the model asked "Is the solution above'
        ' correct?" after its solution. Their F1 uses a threshold fitted on the other half of the problems.',
        "",
        markdown_table(["model", "signal", "AUROC", "F1", "cost"], rows),
        "",
        verdict,
    ]


def probe_section(probe: dict) -> list[str]:
    """report.md's lines on the held-out probe: AUROC and F1 of each trained model's score by step."""
    runs = [name for name in ("laser", "grpo") if probe.get(name)]
    steps = sorted({step for name in runs for step, _ in probe[name].get("auroc", [])})
    rows = []
    for step in steps:
        cells = [dict(probe[name].get(metric, [])).get(step) for name in runs for metric in ("auroc", "f1")]
        rows.append([step, *map(format_number, cells)])
    header = ["step", *(f"{name} {metric}" for name in runs for metric in ("AUROC", "F1"))]
    return [
        "## Self-verification on the held-out probe, during training",
        "",
        "The start model's solutions to held-out problems (start/probe.jsonl), scored by each model as it trains:"
        " the same solutions at every step, whichever ones RL leaves. GRPO's score is the same readout, untrained.",
        "",
        markdown_table(header, rows),
        "",
        "![probe](probe.png)",
    ]


def plot_probe(probe: dict) -> Figure:
    """AUROC and F1 on the probe against training steps, LaSeR's and GRPO's."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("auroc", "f1"), strict=True):
        for name in ("laser", "grpo"):
            points = probe.get(name, {}).get(metric, [])
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set(xlabel="training step", ylabel=metric.upper(), ylim=(0, 1), title=f"probe {metric.upper()}")
        ax.legend()
    return fig


def demo_targets(models: dict) -> list[dict]:
    """The demo's targets (the paper's shape of results), each measured on this run's models.

    Args:
        models: {"start" | "grpo" | "laser": the result `evaluate_records` gives, with "trivial_judge"}.

    Returns:
        [{"target": what is asked, "measured": the numbers, "met": bool}], in the order of the issue's bar;
        a target whose numbers are undefined (an AUROC with one class absent) is not met, and "above" is judged
        on the numbers as printed (3 decimals).
    """
    accuracy = {name: models[name]["accuracy"] for name in MODELS}
    laser, grpo_auroc = headline_numbers(models["laser"]), models["grpo"]["self_verification"]["all"]["auroc"]
    targets = [
        (
            "LaSeR accuracy >= GRPO accuracy >= start accuracy",
            f"{accuracy['laser']:.3f} / {accuracy['grpo']:.3f} / {accuracy['start']:.3f}",
            accuracy["laser"] >= accuracy["grpo"] >= accuracy["start"],
        ),
        ("LaSeR self-verification F1 >= 0.85", format_number(laser["F1"]), _at_least(laser["F1"], 0.85)),
        ("LaSeR self-verification AUROC >= 0.90", format_number(laser["AUROC"]), _at_least(laser["AUROC"], 0.90)),
        (
            "GRPO's own score near chance (AUROC within 0.1 of 0.5)",
            format_number(grpo_auroc),
            grpo_auroc is not None and abs(grpo_auroc - 0.5) <= 0.1,
        ),
    ]
    for n in [number.split("@")[1] for number in laser if number.startswith("majority@")]:
        weighted, majority = laser[f"weighted@{n}"], laser[f"majority@{n}"]
        # "Above" must show in the printed numbers: 1.000 against a majority of 0.99995 (one subsample draw in
        # 20,000) is a tie on the page and no evidence.
        measured = f"{weighted:.3f} vs {majority:.3f}"
        above = round(weighted, 3) > round(majority, 3)
        targets.append((f"LaSeR weighted voting > majority voting at N = {n}", measured, above))
    judge_auroc = laser["judge AUROC"]
    targets.append(
        (
            "LaSeR's score beats the trivial length/format judge clearly (AUROC by 0.1 or more)",
            f"{format_number(laser['AUROC'])} vs {format_number(judge_auroc)}",
            judge_auroc is not None and _at_least(laser["AUROC"], judge_auroc + 0.1),
        )
    )
    return [{"target": target, "measured": measured, "met": bool(met)} for target, measured, met in targets]


def targets_met(targets: list[dict]) -> str:
    """How many of `demo_targets`' targets are met, as "k of n"."""
    return f"{sum(target['met'] for target in targets)} of {len(targets)}"


def _at_least(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def environment() -> dict[str, str]:
    """What a demo's numbers depend on besides its settings: the library versions and the CPU model."""
    versions = {name: importlib.metadata.version(name) for name in ("torch", "transformers", "trl")}
    return {"python": platform.python_version(), **versions, "cpu": _cpu_model()}


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def readme_tables(summary: dict) -> str:
    """The README's two tables of a demo run: reasoning and self-verification, then voting at the two
    largest N (`tests/test_readme.py` checks that the README shows them as this renders them)."""
    rows, votes = [], []
    for name in MODELS:
        result = summary["models"][name]
        verification = result["self_verification"]["all"]
        cells = [result["accuracy"], verification["f1"], verification["auroc"], verification["acc_correct"]]
        cells += [verification["acc_wrong"], verification["ece"], result["trivial_judge"]["auroc"]]
        rows.append([DISPLAY_NAMES[name], *map(format_number, cells)])
        numbers = headline_numbers(result)
        votes.append(
            [DISPLAY_NAMES[name], *(format_number(numbers[k]) for k in numbers if k.startswith(("major", "weight")))]
        )
    header = ["model", "accuracy", "self-verif. F1", "AUROC", "acc. on correct", "acc. on wrong", "ECE"]
    n = summary["models"]["laser"]["scaling"]["n"][-2:]
    voting = ["model", f"majority@{n[0]}", f"weighted@{n[0]}", f"majority@{n[1]}", f"weighted@{n[1]}"]
    return markdown_table([*header, "trivial judge AUROC"], rows) + "\n\n" + markdown_table(voting, votes[1:])


def headline_numbers(result: dict) -> dict[str, float | None]:
    """The numbers of one model's result that the paper compares: accuracy, self-verification, the trivial
    judge, and voting at the two largest N (8 and 16 in the full demo)."""
    numbers = {
        "accuracy": result["accuracy"],
        "F1": result["self_verification"]["all"]["f1"],
        "AUROC": result["self_verification"]["all"]["auroc"],
        "judge AUROC": result["trivial_judge"]["auroc"],
    }
    scaling = result["scaling"]
    for i, n in list(enumerate(scaling["n"]))[-2:]:
        numbers[f"majority@{n}"] = scaling["majority"][i]
        numbers[f"weighted@{n}"] = scaling["weighted_majority"][i]
    numbers[f"best-of-{scaling['n'][-1]}"] = scaling["best_of_n"][-1]
    return numbers


def seed_spread(summaries: dict[int, dict]) -> dict[str, dict[str, dict]]:
    """Mean, standard deviation (n - 1) and per-seed values of every headline number, per model.

    Args:
        summaries: {seed: the summary `run_demo` returns}, two seeds or more.

    Returns:
        {model: {number: {"mean", "std", "seeds": {seed: value}}}}; None values (an AUROC with one
        class absent) are left out of the mean and std, which are None when fewer than 2 remain.
    """
    spread: dict[str, dict[str, dict]] = {}
    for name in MODELS:
        per_seed = {seed: headline_numbers(summary["models"][name]) for seed, summary in summaries.items()}
        spread[name] = {}
        for number in next(iter(per_seed.values())):
            values = {seed: numbers[number] for seed, numbers in per_seed.items()}
            present = [value for value in values.values() if value is not None]
            enough = len(present) >= 2
            spread[name][number] = {
                "mean": statistics.mean(present) if enough else None,
                "std": statistics.stdev(present) if enough else None,
                "seeds": values,
            }
    return spread


def spread_tables(summaries: dict[int, dict]) -> str:
    """The headline numbers over seeds as two Markdown tables: mean ± std per model, then each seed's row (what
    spread.md shows, and the README for the committed seeds; `tests/test_readme.py` checks it there)."""
    spread = seed_spread(summaries)
    numbers = list(spread["laser"])
    means = [[name, *(_mean_std(spread[name][number]) for number in numbers)] for name in MODELS]
    rows = [
        [name, seed, *(format_number(spread[name][number]["seeds"][seed]) for number in numbers)]
        for name in MODELS
        for seed in summaries
    ]
    return markdown_table(["model", *numbers], means) + "\n\n" + markdown_table(["model", "seed", *numbers], rows)


def write_spread_report(out_dir: Path, summaries: dict[int, dict]) -> dict:
    """spread.json and spread.md: the headline numbers over seeds, as mean ± std and per seed, and the targets
    each seed met (from its summary's "targets")."""
    spread = seed_spread(summaries)
    write_text_atomically(out_dir / "spread.json", json.dumps(spread, indent=2))
    lines = [
        f"# laser demo over seeds {', '.join(map(str, summaries))}",
        "",
        "Mean ± standard deviation over the seeds; each seed's report is in seed-S/report.md.",
        "",
        spread_tables(summaries),
        "",
    ]
    rows = [
        [seed, targets_met(s["targets"]), "; ".join(t["target"] for t in s["targets"] if not t["met"]) or "none"]
        for seed, s in summaries.items()
    ]
    lines.append(markdown_table(["seed", "targets met", "targets missed"], rows))
    write_text_atomically(out_dir / "spread.md", "\n".join(lines) + "\n")
    return spread


def _mean_std(entry: dict) -> str:
    if entry["mean"] is None:
        return "n/a"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"
