"""The `--quick` demo end to end: the slowest test of the suite (a few minutes on 2 cores)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from laser_rl.cli import main
from laser_rl.testing import REWARD_TOKEN


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    main(["demo", "--quick", "--out", str(out)])
    return out


def test_quick_demo_writes_a_report_with_numbers_in_range(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    assert set(report["models"]) == {"start", "grpo", "laser"}
    assert report["c_ref"]["mean"] < 0
    assert report["environment"]["torch"] == torch.__version__ and report["environment"]["cpu"]
    for result in report["models"].values():
        assert 0 <= result["accuracy"] <= 1
        scaling = result["scaling"]
        assert scaling["n"][-1] == report["settings"]["eval_samples"]
        assert all(0 <= value <= 1 for key in ("majority", "weighted_majority", "best_of_n") for value in scaling[key])
        # pass@N is the ceiling of every voting rule
        assert all(p >= m - 1e-9 for p, m in zip(scaling["pass_at_n"], scaling["majority"], strict=True))
        # every wrong solution holds at least one named kind of mistake
        wrong = round((1 - result["accuracy"]) * result["num_solutions"])
        assert sum(kind["count"] for kind in result["by_error_kind"].values()) >= wrong
    markdown = (demo_dir / "report.md").read_text()
    assert "| laser |" in markdown and "self-reward weighted" in markdown and "kind of mistake" in markdown
    assert (
        "Trained 40 steps of 8 x 8 solutions at lr 3e-05, warm-ups 5 + 15; LaSeR: alpha 0.5, beta_v 0.1," in markdown
    )
    assert [target["met"] for target in report["targets"]].count(True) == int(markdown.split(" of 7 met.")[0][-1])
    for name in ("start", "grpo", "laser"):
        assert (demo_dir / "eval" / name / "scaling.png").stat().st_size > 1000


def test_quick_demo_models_reload_like_hub_models(demo_dir):
    for name in ("start", "grpo", "laser"):
        model = AutoModelForCausalLM.from_pretrained(demo_dir / name)
        tokenizer = AutoTokenizer.from_pretrained(demo_dir / name)
        text = "Q: 12+34=\nA:\n"
        assert tokenizer.decode(tokenizer(text).input_ids) == text
        reward_token_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
        assert tokenizer.encode(REWARD_TOKEN, add_special_tokens=False) == [reward_token_id]
        assert model.config.vocab_size == len(tokenizer)


def test_quick_demo_resumes_without_redoing_stages(demo_dir, capsys):
    before = (demo_dir / "report.json").read_text()
    stamps = {name: (demo_dir / name / "model.safetensors").stat().st_mtime for name in ("start", "grpo", "laser")}
    # As if stopped after training, before sampling: the samples are redone, the same, and nothing is retrained.
    for name in ("start", "laser"):
        (demo_dir / "eval" / f"{name}.jsonl").unlink()
    main(["demo", "--quick", "--out", str(demo_dir)])
    assert (demo_dir / "report.json").read_text() == before
    assert stamps == {name: (demo_dir / name / "model.safetensors").stat().st_mtime for name in stamps}


def test_demo_refuses_a_directory_made_with_other_settings(demo_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(demo_dir)])
    assert exit_info.value.code == 2
    assert "other settings" in capsys.readouterr().err


def test_quick_demo_models_carry_their_scoring_settings(demo_dir):
    from laser_rl.demo.pipeline import PROMPT_TEMPLATE
    from laser_rl.demo.task import Problem

    c_ref = json.loads((demo_dir / "start" / "c_ref.json").read_text())
    assert PROMPT_TEMPLATE.replace("{problem}", "12+34") == Problem(12, 34).prompt
    for name in ("start", "grpo", "laser"):
        carried = json.loads((demo_dir / name / "laser_config.json").read_text())
        assert carried["reward_token"] == REWARD_TOKEN and carried["c_ref"] == c_ref["mean"]
        assert carried["prompt_template"] == PROMPT_TEMPLATE and carried["chat"] is False


def test_a_training_stage_stopped_midway_resumes_to_the_uninterrupted_weights(demo_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    from safetensors.torch import load_file

    from laser_rl.demo import pipeline
    from laser_rl.demo.progress import TrainingProgress

    settings = replace(pipeline.QUICK, rl_steps=4, save_steps=2, probe_steps=2)
    c_ref = json.loads((demo_dir / "start" / "c_ref.json").read_text())
    pipeline._train("laser", demo_dir / "start", tmp_path / "whole", settings, c_ref)

    step_end = TrainingProgress.on_step_end

    def stopped_at_step_3(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt
        return step_end(self, args, state, control, **kwargs)

    monkeypatch.setattr(TrainingProgress, "on_step_end", stopped_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pipeline._train("laser", demo_dir / "start", tmp_path / "cut", settings, c_ref)
    monkeypatch.undo()
    assert [path.name for path in (tmp_path / "cut").glob("checkpoint-*")] == ["checkpoint-2"]
    pipeline._train("laser", demo_dir / "start", tmp_path / "cut", settings, c_ref)

    def trained(name):
        history = json.loads((tmp_path / name / "log_history.json").read_text())
        probes = [{k: v for k, v in e.items() if k.startswith("probe/") or k == "step"} for e in history]
        return load_file(tmp_path / name / "model.safetensors"), [e for e in probes if "probe/auroc" in e]

    (whole, whole_probes), (resumed, resumed_probes) = trained("whole"), trained("cut")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    assert [e["step"] for e in resumed_probes] == [0, 2, 4] and resumed_probes == whole_probes
    # Stopped after the last step's checkpoint: that checkpoint is the model, nothing is trained again.
    (tmp_path / "cut" / "model.safetensors").unlink()
    pipeline._train("laser", demo_dir / "start", tmp_path / "cut", settings, c_ref)
    assert trained("cut")[0].keys() == whole.keys()
    assert all(torch.equal(whole[name], trained("cut")[0][name]) for name in whole)
    assert not (tmp_path / "cut" / "checkpoint-5").exists()


def test_the_report_plots_the_probe_of_both_trained_models(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    for name in ("laser", "grpo"):
        steps = [step for step, _ in report["probe"][name]["auroc"]]
        assert steps == [0, 10, 20, 30, 40]
        assert all(0 <= value <= 1 for _, value in report["probe"][name]["auroc"])
    assert "held-out probe" in (demo_dir / "report.md").read_text()
    assert (demo_dir / "probe.png").stat().st_size > 1000
