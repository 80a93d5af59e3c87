"""`laser demo --out DIR [--quick]`: LaSeR end to end on the embedded task, on a CPU."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="warm-start a tiny model, train it with GRPO and LaSeR, evaluate, write a report"
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (resumable)")
    parser.add_argument("--quick", action="store_true", help="smaller settings: about 3 minutes instead of 15")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> None:
    import time

    from laser_rl.demo.pipeline import FULL, QUICK, run_demo

    begin = time.time()
    settings = replace(QUICK if args.quick else FULL, seed=args.seed)
    summary = run_demo(args.out, settings)
    laser, grpo = summary["models"]["laser"], summary["models"]["grpo"]
    print(
        f"laser demo: done in {time.time() - begin:.0f} s; accuracy start/GRPO/LaSeR "
        + "/".join(f"{summary['models'][m]['accuracy']:.3f}" for m in ("start", "grpo", "laser"))
        + f"; self-verification F1 GRPO {grpo['self_verification']['all']['f1'] or 0:.3f}"
        + f" vs LaSeR {laser['self_verification']['all']['f1'] or 0:.3f}; see {args.out / 'report.md'}"
    )
