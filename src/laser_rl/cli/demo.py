"""`laser demo --out DIR [--model M] [--quick] [--seed S ...] [--set FIELD=VALUE ...]`: LaSeR end to end on the
embedded task, on a CPU.

The start model is a tiny Qwen2 built on the spot (`--model tiny`, the default) or SmolLM2-135M-Instruct
from its PyPI wheel (`--model smollm2-135m-instruct`), fine-tuned on the task's format first. `--set` changes
one of the preset's numbers (`laser_rl.demo.pipeline.DemoSettings`), to measure a lever against the preset.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from laser_rl.errors import LaserInputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="warm-start a tiny model, train it with GRPO and LaSeR, evaluate, write a report"
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (resumable)")
    parser.add_argument(
        "--model",
        choices=["tiny", "smollm2-135m-instruct"],
        default="tiny",
        help="start model: a tiny one built on the spot (15 minutes), or a real pretrained one (about 60)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller settings: a few minutes, every stage")
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="(0) several seeds run one after the other into DIR/seed-S, then DIR/spread.md gives mean ± std",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="change a number of the preset, e.g. reward_token_lr_scale=100 (laser_rl.demo.pipeline.DemoSettings)",
    )


def run(args: argparse.Namespace) -> None:
    import time

    from laser_rl.demo.pipeline import PRESETS, override_settings, run_demo
    from laser_rl.demo.report import targets_met, write_spread_report

    if len(set(args.seed)) < len(args.seed):
        raise LaserInputError(f"--seed: a seed is given twice in {args.seed}")
    summaries = {}
    for seed in args.seed:
        begin = time.time()
        out = args.out if len(args.seed) == 1 else args.out / f"seed-{seed}"
        full, quick = PRESETS[args.model]
        settings = override_settings(quick if args.quick else full, args.set)
        summary = summaries[seed] = run_demo(out, replace(settings, seed=seed))
        laser, grpo = summary["models"]["laser"], summary["models"]["grpo"]
        print(
            f"laser demo: done in {time.time() - begin:.0f} s; accuracy start/GRPO/LaSeR "
            + "/".join(f"{summary['models'][m]['accuracy']:.3f}" for m in ("start", "grpo", "laser"))
            + f"; self-verification F1 GRPO {grpo['self_verification']['all']['f1'] or 0:.3f}"
            + f" vs LaSeR {laser['self_verification']['all']['f1'] or 0:.3f}"
            + f"; targets met {targets_met(summary['targets'])}; see {out / 'report.md'}"
        )
    if len(summaries) > 1:
        write_spread_report(args.out, summaries)
        print(f"laser demo: {len(summaries)} seeds, mean ± std in {args.out / 'spread.md'}")
