import json
import re

import pytest
import torch
import yaml

from laser_rl.cli import main
from laser_rl.testing import REWARD_TOKEN


@pytest.fixture
def model_dir(short_answer_model, tokenizer, tmp_path):
    path = tmp_path / "model"
    short_answer_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def recipe(tmp_path, model_dir, data, **overrides) -> str:
    fields = {
        "model_name_or_path": str(model_dir),
        "dataset": str(data),
        "prompt_template": "Q: {problem}=",
        "output_dir": str(tmp_path / "run"),
        "use_cpu": True,
        "bf16": False,
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 4,
        "max_steps": 2,
        "save_steps": 1,
        "report_to": "none",
        "logging_steps": 1,
        "reward_token": REWARD_TOKEN,
        "c_ref": -5.0,
        "reasoning_warmup_steps": 0,
        "self_reward_warmup_steps": 1,
    }
    fields.update(overrides)
    fields = {key: value for key, value in fields.items() if value is not None}  # None: leave the field unset
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(fields))
    return str(path)


def run_failing(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def test_train_from_a_yaml_recipe_with_a_flag_override(model_dir, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    main(["train", "--config", recipe(tmp_path, model_dir, data), "--max_steps", "1"])
    run = tmp_path / "run"
    assert (run / "model.safetensors").is_file() and (run / "checkpoint-1").is_dir()
    state = json.loads((run / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and "laser/phase" in state["log_history"][0]


@pytest.mark.parametrize(
    ("rows", "overrides", "message"),
    [
        ([{"question": "1+1", "answer": "2"}], {}, "no column 'problem'"),
        ([], {}, "no problems"),
        ([{"problem": "1+1", "answer": "2"}], {"not_a_field": 1}, "not_a_field"),
        ([{"problem": "1+1", "answer": "2"}], {"c_ref": 3.0}, "c_ref"),
        ([{"problem": f"1+1{REWARD_TOKEN}", "answer": "2"}], {}, "uses the reward token"),
        ([{"problem": "1+1", "answer": "2"}], {"reward_token": "<|nope|>"}, "not a single token"),
        ([{"problem": "1+1", "answer": "2"}], {"reward": ["nonsense"]}, "--reward nonsense: no such verifier"),
        ([{"problem": "1+1", "answer": "2"}], {"reward": ["no_such_module:f"]}, "cannot import no_such_module"),
        ([{"problem": "1+1", "answer": "2"}], {"reward": ["math", "exact"], "reward_weights": [1.0, 1.0]}, "sum to 1"),
        ([{"problem": "1+1", "answer": "A"}], {"prompt_template": "{problem} {choices}"}, "no column 'choices'"),
        (
            [{"problem": "1+1", "answer": "A", "choices": ["2", "3"]}, {"problem": "1+2", "answer": "A"}],
            {"prompt_template": "{problem} {choices}"},
            "train.jsonl: row 1: the prompt template shows {choices} but the problem has no list of choices",
        ),
    ],
)
def test_bad_training_input_is_one_line_and_exit_2(model_dir, tmp_path, capsys, rows, overrides, message):
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    line = run_failing(["train", "--config", recipe(tmp_path, model_dir, data, **overrides)], capsys)
    assert line.startswith("laser train: error:") and message in line


def test_train_on_multiple_choice_with_two_weighted_verifiers_that_see_the_choices(model_dir, tmp_path, monkeypatch):
    (tmp_path / "my_verifiers.py").write_text(
        "def three_choices(completions, answer, choices, **kwargs):\n"
        "    return [float(len(options) == 3) for options in choices]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "my_verifiers", raising=False)
    rows = [{"problem": f"{a}+{a}", "choices": [str(2 * a), "7", "0"], "answer": "A"} for a in range(8)]
    data = write_jsonl(tmp_path / "choice.jsonl", rows)
    template = "Q: {problem}=\n{choices}\nAnswer with a letter."
    main(
        ["train", "--config", recipe(tmp_path, model_dir, data, prompt_template=template)]
        + ["--reward", "choice", "my_verifiers:three_choices", "--reward_weights", "0.5", "0.5"]
    )
    state = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())
    logs = state["log_history"][0]
    assert logs["rewards/three_choices/mean"] == 1.0 and 0.0 <= logs["rewards/choice_reward/mean"] <= 1.0
    assert logs["reward"] == pytest.approx(0.5 + 0.5 * logs["rewards/choice_reward/mean"])


def test_train_with_an_llm_judge_served_over_http(model_dir, tmp_path):
    from judge_server import NO_PROBABILITY, JudgeServer

    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    with JudgeServer() as server:
        judge = ["--reward", "judge", "--judge_url", server.url, "--judge_model", "judge-7b"]
        main(["train", "--config", recipe(tmp_path, model_dir, data, max_steps=1)] + judge)
    logs = json.loads((tmp_path / "run" / "checkpoint-1" / "trainer_state.json").read_text())["log_history"][0]
    # the tiny model boxes nothing: the judge says no, with its probability
    assert logs["rewards/judge_reward/mean"] == pytest.approx(NO_PROBABILITY) and logs["judge/unjudged"] == 0.0
    shown = re.search(r"Problem:\n(\d)\+\1\n\nReference answer:\n(\d+)\n", server.bodies[0]["messages"][0]["content"])
    assert int(shown[2]) == 2 * int(shown[1])  # the problem and its answer, not the prompt
    cached = (tmp_path / "run" / "judge_cache.jsonl").read_text().splitlines()
    assert 1 <= len(cached) == server.requests <= 4


def test_missing_data_file_is_named(model_dir, tmp_path, capsys):
    line = run_failing(["train", "--config", recipe(tmp_path, model_dir, tmp_path / "absent.jsonl")], capsys)
    assert "absent.jsonl: no such file" in line


@pytest.mark.parametrize(
    "name", ["qwen2.5-7b-deepmath.yaml", "octothinker-3b-deepmath.yaml", "general-reasoning-mmlu-pro.yaml"]
)
def test_shipped_recipes_parse_with_the_paper_settings(name):
    from pathlib import Path

    from laser_rl.cli.train import train_parser

    recipe_path = Path(__file__).resolve().parents[1] / "recipes" / name
    # The GPU-only switches are turned off so that the recipe parses on a CPU machine.
    data_args, config, _, _ = train_parser().parse_args_and_config(
        ["--config", str(recipe_path), "--use_cpu", "true", "--bf16", "false", "--use_vllm", "false"]
    )
    assert (config.self_reward_loss_coef, config.self_reward_beta) == (0.1, 0.1)
    assert (config.self_rewarding_advantage_coef, config.self_rewarding_std_threshold) == (0.1, 0.1)
    assert (config.reasoning_warmup_steps, config.self_reward_warmup_steps) == (200, 200)
    assert config.num_generations == 8 and config.learning_rate == 1e-6 and config.c_ref < -20
    assert config.activation_checkpointing  # transformers 5's name; `gradient_checkpointing` is a deprecated alias
    assert config.prompt_template.replace("{problem}", "P").endswith("within \\boxed{}.")
    if name.startswith("general-reasoning"):  # multiple choice: the options shown, the letter checked
        assert data_args.reward == ["choice"] and data_args.choices_column == "options"
        assert "{choices}" in config.prompt_template


def test_the_model_folders_laser_config_sets_z_c_c_ref_and_prompts_and_the_run_carries_them(model_dir, tmp_path):
    stored = {"reward_token": REWARD_TOKEN, "c_ref": -6.5, "prompt_template": "Q: {problem}=", "chat": False}
    (model_dir / "laser_config.json").write_text(json.dumps(stored))
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    fields = {"reward_token": None, "c_ref": None, "prompt_template": None}
    main(["train", "--config", recipe(tmp_path, model_dir, data, **fields), "--self_reward_beta", "0.2"])
    for folder in (tmp_path / "run", tmp_path / "run" / "checkpoint-1"):
        carried = json.loads((folder / "laser_config.json").read_text())
        written = {"reward_token_id": carried["reward_token_id"], "self_reward_beta": 0.2}
        written["self_reward_initial_score"] = 0.0
        assert carried == stored | written
    # generate needs no flag: z_c, c_ref, beta_v and the prompt come with the trained model
    out = tmp_path / "generated.jsonl"
    main(["generate", "--model", str(tmp_path / "run"), "--data", str(data), "--n", "1", "--out", str(out)]
         + ["--max-new-tokens", "3"])  # fmt: skip
    record = json.loads(out.read_text().splitlines()[0])
    logp, score = record["reward_token_logps"][0], record["self_rewarding_scores"][0]
    assert logp is None or score == pytest.approx(0.2 * (logp + 6.5))


@pytest.mark.parametrize(
    ("folder", "message"),
    [("absent", "absent: no such model folder"), ("bad-token", "laser_config.json: '<|nope|>' is not a single token")],
)
def test_a_bad_model_is_one_line_and_exit_2(model_dir, tmp_path, capsys, folder, message):
    if folder == "bad-token":
        (model_dir / "laser_config.json").write_text(json.dumps({"reward_token": "<|nope|>"}))
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": "1+1", "answer": "2"}])
    model = model_dir if folder == "bad-token" else tmp_path / folder
    line = run_failing(["train", "--config", recipe(tmp_path, model, data, reward_token=None)], capsys)
    assert message in line


def test_killed_training_rerun_with_the_same_command_ends_with_the_uninterrupted_weights(model_dir, tmp_path, capsys):
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    flags = ["--max_steps", "4", "--learning_rate", "1e-3", "--self_reward_loss_coef", "1.0"]

    def command(out):
        config = recipe(tmp_path, model_dir, data, output_dir=str(out))
        return ["train", "--config", config, *flags]

    main(command(tmp_path / "whole"))
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "laser_rl.cli", *command(killed)], stderr=subprocess.DEVNULL)
    while not (killed / "checkpoint-2" / "trainer_state.json").is_file() and process.poll() is None:
        time.sleep(0.02)
    process.kill()
    process.wait()
    (killed / "checkpoint-3").mkdir(exist_ok=True)  # as if cut off while writing: its state is torn
    (killed / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_hist')
    capsys.readouterr()
    main(command(killed))
    assert f"resuming from {killed / 'checkpoint-2'}" in capsys.readouterr().err  # not the torn checkpoint-3
    whole, resumed = load_file(tmp_path / "whole" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)
    main(command(killed))  # done: nothing more is trained
    assert "nothing left to train" in capsys.readouterr().err
    assert not (killed / "checkpoint-5").exists()
    main([*command(killed), "--resume_from_checkpoint", "false", "--max_steps", "1"])  # afresh, by request
    assert json.loads((killed / "checkpoint-1" / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.parametrize(("setting", "message"), [("true", "no complete checkpoint"), ("absent", "not a checkpoint")])
def test_a_checkpoint_that_cannot_be_resumed_is_one_line(model_dir, tmp_path, capsys, setting, message):
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": "1+1", "answer": "2"}])
    argv = ["train", "--config", recipe(tmp_path, model_dir, data), "--resume_from_checkpoint", setting]
    assert message in run_failing(argv, capsys)


def test_the_small_model_recipe_parses_with_the_settings_its_docs_measured():
    from pathlib import Path

    from laser_rl.cli.train import train_parser

    recipe_path = Path(__file__).resolve().parents[1] / "recipes" / "small-model-smollm2.yaml"
    data_args, config, _, _ = train_parser().parse_args_and_config(["--config", str(recipe_path)])
    assert (config.self_reward_loss_coef, config.self_rewarding_advantage_coef) == (0.1, 0.1)  # the paper's
    assert (config.self_reward_beta, config.self_reward_initial_score) == (0.5, 0.5)
    assert (config.self_reward_level_weight, config.reward_token_lr_scale) == (0.01, 1000.0)
    assert config.use_cpu and config.c_ref == "auto" and data_args.dataset == "additions.jsonl"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the default for a machine with no GPU")
def test_without_a_gpu_and_no_precision_asked_it_trains_in_float32_on_the_cpu(model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    main(["train", "--config", recipe(tmp_path, model_dir, data, use_cpu=None, bf16=None), "--max_steps", "1"])
    assert "training in float32 on the CPU" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dtype"] == "float32"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset": "missing.jsonl"}, "missing.jsonl: no such file"),
        ({"reward": ["nonsense"]}, "--reward nonsense: no such verifier"),
    ],
)
def test_the_users_own_inputs_are_checked_before_the_librarys_settings(
    model_dir, tmp_path, capsys, overrides, message
):
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": "1+1", "answer": "2"}])
    # bf16 asked for on a machine without a GPU, and per_device_train_batch_size not a multiple of num_generations
    path = recipe(tmp_path, model_dir, data, use_cpu=False, bf16=True, per_device_train_batch_size=3, **overrides)
    assert message in run_failing(["train", "--config", path], capsys)
