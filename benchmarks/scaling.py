"""How the costs grow with solution length (64 to 2048 tokens) and batch size.

Runs the rows of `test_time_scoring` (per-solution scoring costs relative to generation; lengths
forced in generation, the after-the-fact variants score the generated solutions) and the loss-step
rows of `train_step` (time and peak memory of LaSeR and of the authors' way against GRPO, on a
rollout with lengths forced and spread over [L/2, L]) over a sweep of L at a fixed B, then of B at
a fixed L. The mid model gets a shorter sweep and runs only when asked for (`--models mid`): on 2
shared CPU cores it decodes 10 to 20 steps/s, so its sweep alone takes about 5 minutes.

    python -m benchmarks.scaling [--quick] [--models tiny mid]
"""

from __future__ import annotations

from benchmarks import test_time_scoring, train_step
from benchmarks.common import argument_parser, build_bench, describe, format_checks, print_table, setup

SWEEPS = {  # model: {"test-time": [(L, B), ...], "train": [(L, B), ...]}
    "quick": {"tiny": {"test-time": [(64, 2), (128, 2)], "train": [(32, 4), (64, 4)]}, "mid": {}, "smollm2": {}},
    "full": {
        "tiny": {
            "test-time": [(64, 4), (256, 4), (1024, 4), (2048, 4), (256, 1), (256, 16)],
            "train": [(64, 4), (256, 4), (1024, 4), (2048, 4), (256, 16)],
        },
        "mid": {"test-time": [(32, 2), (128, 2)], "train": [(32, 4), (128, 4)]},
        "smollm2": {"test-time": [(64, 4)], "train": [(64, 4)]},
    },
}


def main() -> None:
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    models = setup(args, full_repeats=3, full_models=["tiny"])
    sweeps = SWEEPS["quick" if args.quick else "full"]
    test_time_rows, train_rows = [], []
    for name in models:
        bench = build_bench(name)
        print(describe(bench), flush=True)
        for length, batch_size in sweeps[name].get("test-time", []):
            row, checks = test_time_scoring.measure(bench, length, batch_size, args.repeats)
            print(format_checks(f"test-time L={length} B={batch_size}", checks), flush=True)
            test_time_rows.append(row)
        for length, batch_size in sweeps[name].get("train", []):
            row, _, checks = train_step.measure(bench, length, batch_size, args.repeats, rollouts=False)
            print(format_checks(f"train L={length} B={batch_size}", checks), flush=True)
            train_rows.append(row)
    title = f"(median of {args.repeats}, 25-75% range)"
    print_table(f"Test-time scoring cost relative to generation {title}", test_time_scoring.HEADERS, test_time_rows)
    print_table(f"Loss step, forward + backward {title}", train_step.LOSS_HEADERS, train_rows)


if __name__ == "__main__":
    main()
