"""`laser demo --seed S ... --set FIELD=VALUE ...`: one demo per seed, then the spread of the headline numbers;
a preset's numbers changed to measure a lever."""

import json

import pytest

import laser_rl.demo.pipeline
from laser_rl.cli import main
from laser_rl.demo.report import MODELS, demo_targets, seed_spread


def fake_summary(accuracy: float, auroc: float | None) -> dict:
    """A run_demo summary whose models all have these numbers (K = 4 samples: voting at N = 2 and 4)."""
    result = {
        "accuracy": accuracy,
        "self_verification": {"all": {"f1": accuracy / 2, "auroc": auroc}},
        "trivial_judge": {"auroc": 0.5},
        "scaling": {
            "n": [1, 2, 4],
            "majority": [accuracy, accuracy, 1.0],
            "weighted_majority": [accuracy, 0.9, 0.95],
            "best_of_n": [accuracy, 0.8, 0.7],
        },
    }
    models = {name: result for name in MODELS}
    return {"models": models, "targets": demo_targets(models)}


def test_seed_spread_gives_mean_and_sample_std_per_number():
    spread = seed_spread({0: fake_summary(0.5, 0.6), 3: fake_summary(0.7, None), 5: fake_summary(0.9, 0.8)})
    laser = spread["laser"]
    assert list(laser) == [
        "accuracy", "F1", "AUROC", "judge AUROC", "majority@2", "weighted@2", "majority@4", "weighted@4", "best-of-4"
    ]  # fmt: skip
    assert laser["accuracy"]["mean"] == pytest.approx(0.7)
    assert laser["accuracy"]["std"] == pytest.approx(0.2)  # n - 1 in the denominator
    assert laser["accuracy"]["seeds"] == {0: 0.5, 3: 0.7, 5: 0.9}
    # an undefined AUROC is left out of the mean, not counted as 0
    assert laser["AUROC"]["mean"] == pytest.approx(0.7) and laser["AUROC"]["seeds"][3] is None
    assert laser["best-of-4"] == {"mean": 0.7, "std": 0.0, "seeds": {0: 0.7, 3: 0.7, 5: 0.7}}


def test_several_seeds_run_into_their_own_directories_and_write_the_spread(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run_demo(out_dir, settings):
        calls.append((out_dir, settings.seed))
        return fake_summary(0.5 + settings.seed / 10, 0.7)

    monkeypatch.setattr(laser_rl.demo.pipeline, "run_demo", fake_run_demo)
    main(["demo", "--quick", "--out", str(tmp_path), "--seed", "2", "0"])
    assert calls == [(tmp_path / "seed-2", 2), (tmp_path / "seed-0", 0)]
    spread = json.loads((tmp_path / "spread.json").read_text())
    assert spread["grpo"]["accuracy"]["seeds"] == {"2": 0.7, "0": 0.5}
    markdown = (tmp_path / "spread.md").read_text()
    assert "| laser | 0.600 ± 0.141 |" in markdown and "| laser | 2 | 0.700 |" in markdown
    # every model of the fake has the same accuracy, so LaSeR >= GRPO >= start holds; its F1 is under 0.85
    assert "| 0 | 3 of 7 | LaSeR self-verification F1 >= 0.85;" in markdown
    output = capsys.readouterr().out
    assert "targets met 3 of 7; see" in output and "mean ± std in" in output


def test_a_seed_given_twice_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(tmp_path), "--seed", "1", "1"])
    assert exit_info.value.code == 2
    assert "--seed: a seed is given twice" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_set_changes_the_presets_numbers_for_every_seed(tmp_path, monkeypatch):
    from laser_rl.demo.pipeline import QUICK

    seen = []
    monkeypatch.setattr(
        laser_rl.demo.pipeline, "run_demo", lambda out, settings: seen.append(settings) or fake_summary(0.5, 0.7)
    )
    main(
        [
            "demo",
            "--quick",
            "--out",
            str(tmp_path),
            "--seed",
            "0",
            "1",
            "--set",
            "rl_steps=3",
            "self_reward_level_fit=1",
        ]
    )
    assert [(s.seed, s.rl_steps, s.self_reward_level_fit) for s in seen] == [(0, 3, 1.0), (1, 3, 1.0)]
    assert all(s.learning_rate == QUICK.learning_rate for s in seen)  # the rest is the preset's


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("rl_step=3", "--set rl_step=3: expected FIELD=VALUE with FIELD one of rl_steps,"),
        ("seed=3", "--set seed=3: expected FIELD=VALUE"),  # --seed sets it
        ("rl_steps", "--set rl_steps: expected FIELD=VALUE"),
        ("rl_steps=2.5", "--set rl_steps=2.5: rl_steps takes an int, got '2.5'"),
        ("learning_rate=fast", "--set learning_rate=fast: learning_rate takes a float, got 'fast'"),
    ],
)
def test_a_bad_set_is_one_line_before_anything_runs(tmp_path, capsys, assignment, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--out", str(tmp_path), "--set", assignment])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
