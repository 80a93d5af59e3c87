"""The demo's targets, measured on a run's models: the issue's bar, target by target."""

import pytest

from laser_rl.demo.report import demo_targets


def result(accuracy, f1=None, auroc=None, judge_auroc=0.5, majority=(0.9, 0.9), weighted=(0.9, 0.9)) -> dict:
    """One model's numbers as `run_demo` reports them (voting at N = 8 and 16)."""
    return {
        "accuracy": accuracy,
        "self_verification": {"all": {"f1": f1, "auroc": auroc}},
        "trivial_judge": {"auroc": judge_auroc},
        "scaling": {
            "n": [4, 8, 16],
            "majority": [0, *majority],
            "weighted_majority": [0, *weighted],
            "best_of_n": [0, 0, 0],
        },
    }


def met(targets: list[dict]) -> list[bool]:
    return [target["met"] for target in targets]


def test_a_run_with_the_papers_shape_meets_every_target():
    models = {
        "start": result(0.3),
        "grpo": result(0.80, f1=0.1, auroc=0.55),
        "laser": result(0.81, f1=0.86, auroc=0.91, judge_auroc=0.6, majority=(0.85, 0.86), weighted=(0.87, 0.88)),
    }
    targets = demo_targets(models)
    assert met(targets) == [True] * 7
    assert targets[0]["measured"] == "0.810 / 0.800 / 0.300"
    assert targets[4]["target"].endswith("N = 8") and targets[5]["measured"] == "0.880 vs 0.860"


@pytest.mark.parametrize(
    ("laser", "grpo_auroc", "missed"),
    [
        (result(0.79, f1=0.86, auroc=0.91, weighted=(0.95, 0.95)), 0.55, {0}),  # LaSeR under GRPO
        (result(0.81, f1=0.84, auroc=0.91, weighted=(0.95, 0.95)), 0.55, {1}),
        (result(0.81, f1=0.86, auroc=None, weighted=(0.95, 0.95)), 0.55, {2, 6}),  # undefined AUROC: not met
        (result(0.81, f1=0.86, auroc=0.91, weighted=(0.95, 0.95)), 0.39, {3}),  # GRPO's score below chance
        (result(0.81, f1=0.86, auroc=0.91, weighted=(0.90, 0.95)), 0.55, {4}),  # a tie is not "above"
        (result(0.81, f1=0.86, auroc=0.91, weighted=(0.95, 0.90)), 0.55, {5}),
        # above by 0.00005: a tie as printed (1.000 vs 1.000), not met
        (result(0.81, f1=0.86, auroc=0.91, majority=(0.99995, 0.9), weighted=(1.0, 0.95)), 0.55, {4}),
        (result(0.81, f1=0.86, auroc=0.91, judge_auroc=0.82, weighted=(0.95, 0.95)), 0.55, {6}),
    ],
)
def test_each_target_is_measured_on_its_own(laser, grpo_auroc, missed):
    models = {"start": result(0.3), "grpo": result(0.8, f1=0.0, auroc=grpo_auroc), "laser": laser}
    assert met(demo_targets(models)) == [i not in missed for i in range(7)]


def test_solutions_seen_weighs_each_logged_reward_by_the_steps_it_covers():
    from laser_rl.demo.report import solutions_seen

    log_history = [
        {"step": 0, "probe/auroc": 0.6},  # no reward: not a training step's entry
        {"step": 2, "reward": 0.75},  # steps 1-2: 64 solutions, 16 wrong
        {"step": 3, "reward": 1.0},  # step 3: 32 solutions, none wrong
        {"step": 5, "reward": 0.5},  # steps 4-5: 64 solutions, 32 wrong
        {"step": 5, "train_loss": 0.1},
    ]
    assert solutions_seen(log_history, 32) == {"solutions": 160, "wrong": 48}
