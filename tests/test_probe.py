"""The held-out self-verification probe: its file, its metrics, and its logs during training."""

import json

import pytest
import torch
from support import BETA_V, C_REF, common_args, dataset, even_length_reward, laser_fields
from trl import GRPOConfig, GRPOTrainer

from laser_rl.cli import main
from laser_rl.config import LaserConfig
from laser_rl.errors import LaserInputError
from laser_rl.probe import SelfVerificationProbe, load_probe, probe_history, probe_metrics
from laser_rl.testing import REWARD_TOKEN
from laser_rl.trainer import LaserGRPOTrainer

TEMPLATE = "Q: {problem}="


def probe_records() -> list[dict]:
    """Graded solutions of `laser generate` + `laser grade` form: both classes, a truncated and an unjudged one."""
    records = []
    for a in range(6):
        records.append(
            {
                "problem": f"{a}+{a}",
                "answer": str(2 * a),
                "responses": [str(2 * a), str(2 * a + 1), "12345", str(a)],
                "finished": [True, True, False, True],
                "acc_list": [1.0, 0.0, 0.0, None if a == 0 else float(a == 0)],
            }
        )
    return records


def write_probe(tmp_path, records, name="probe.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def independent_logps(model, tokenizer, records) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(z_c | x, y, EOS) of each finished, judged solution, one plain forward each, and its label."""
    logps, labels = [], []
    z_c = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    for record in records:
        for response, done, label in zip(record["responses"], record["finished"], record["acc_list"], strict=True):
            if done and label is not None:
                text = TEMPLATE.format(problem=record["problem"]) + response
                ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0, -1]
                logps.append(logits.log_softmax(-1)[z_c].item())
                labels.append(label)
    return torch.tensor(logps), torch.tensor(labels)


def pairwise_auroc(scores, labels) -> float:
    positives, negatives = scores[labels > 0.5], scores[labels <= 0.5]
    wins = [(p > n) + 0.5 * (p == n) for p in positives.tolist() for n in negatives.tolist()]
    return sum(wins) / len(wins)


def test_probe_metrics_equal_an_independent_computation(short_answer_model, tokenizer, tmp_path):
    records = probe_records()
    probe = load_probe(write_probe(tmp_path, records), tokenizer, tokenizer.eos_token_id, TEMPLATE, False)
    logps, labels = independent_logps(short_answer_model, tokenizer, records)
    assert len(probe.sequences) == len(labels) == 6 * 2 + 5  # truncated and unjudged solutions left out
    metrics = probe_metrics(short_answer_model, tokenizer, probe, tokenizer.convert_tokens_to_ids(REWARD_TOKEN),
                            C_REF, BETA_V)  # fmt: skip
    scores = BETA_V * (logps - C_REF)
    judged_correct = scores > 0.5
    acc_correct = judged_correct[labels > 0.5].float().mean().item()
    acc_wrong = (~judged_correct[labels <= 0.5]).float().mean().item()
    assert metrics["auroc"] == pytest.approx(pairwise_auroc(logps, labels), abs=1e-9)
    assert metrics["acc_correct"] == pytest.approx(acc_correct) and metrics["acc_wrong"] == pytest.approx(acc_wrong)
    assert metrics["score_correct_mean"] == pytest.approx(scores[labels > 0.5].mean().item(), abs=1e-5)
    assert metrics["score_wrong_mean"] == pytest.approx(scores[labels <= 0.5].mean().item(), abs=1e-5)
    without_c_ref = probe_metrics(short_answer_model, tokenizer, probe, tokenizer.convert_tokens_to_ids(REWARD_TOKEN),
                                  None, BETA_V)  # fmt: skip
    assert without_c_ref["auroc"] == metrics["auroc"] and without_c_ref["f1"] != without_c_ref["f1"]  # NaN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda records: records, "no such file"),
        (
            lambda records: [{k: v for k, v in r.items() if k != "acc_list"} for r in records],
            ":1: missing field 'acc_list'",
        ),
        (lambda records: [r | {"acc_list": [1.0]} for r in records], ":1: field 'acc_list' must have one reward per"),
        (
            lambda records: [r | {"acc_list": [2.0, 0, 0, 0]} for r in records],
            ":1: field 'acc_list' must hold rewards",
        ),
        (lambda records: [r | {"acc_list": [1.0, 1.0, 0.0, 1.0]} for r in records], "no wrong finished solution"),
        (lambda records: [r | {"acc_list": [0.0] * 4} for r in records], "no right finished solution"),
    ],
    ids=["missing", "no-labels", "short-labels", "out-of-range", "no-wrong", "no-right"],
)
def test_a_bad_probe_file_is_one_line_naming_it(tokenizer, tmp_path, change, message):
    path = tmp_path / "probe.jsonl" if message == "no such file" else write_probe(tmp_path, change(probe_records()))
    with pytest.raises(LaserInputError) as error:
        load_probe(path, tokenizer, tokenizer.eos_token_id, TEMPLATE, False)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_laser_trainer_logs_the_probe_at_step_0_and_every_probe_steps(short_answer_model, tokenizer, tmp_path):
    records = probe_records()
    start_logps, labels = independent_logps(short_answer_model, tokenizer, records)
    probe_file = str(write_probe(tmp_path, records))
    args = LaserConfig(**laser_fields(tmp_path, max_steps=4, probe_file=probe_file, probe_steps=2, logging_steps=3,
                                      prompt_template=TEMPLATE, chat=False))  # fmt: skip
    trainer = LaserGRPOTrainer(
        model=short_answer_model, reward_funcs=even_length_reward, args=args, train_dataset=dataset(),
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    history = probe_history(trainer.state.log_history)
    assert [step for step, _ in history["auroc"]] == [0, 2, 4]
    assert history["auroc"][0][1] == pytest.approx(pairwise_auroc(start_logps, labels), abs=1e-9)
    # after training the probe measures the trained weights
    final_logps, _ = independent_logps(trainer.model, tokenizer, records)
    assert history["auroc"][-1][1] == pytest.approx(pairwise_auroc(final_logps, labels), abs=1e-9)
    assert history["score_correct_mean"][-1][1] == pytest.approx(
        (BETA_V * (final_logps - C_REF))[labels > 0.5].mean().item(), abs=1e-5
    )


def test_the_probe_reads_a_plain_grpo_models_score(short_answer_model, tokenizer, tmp_path):
    records = probe_records()
    trainer = GRPOTrainer(
        model=short_answer_model, reward_funcs=even_length_reward,
        args=GRPOConfig(**common_args(tmp_path) | {"max_steps": 2}), train_dataset=dataset(),
        processing_class=tokenizer,
    )  # fmt: skip
    probe = load_probe(write_probe(tmp_path, records), tokenizer, tokenizer.eos_token_id, TEMPLATE, False)
    z_c = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    trainer.add_callback(SelfVerificationProbe(trainer, probe, z_c, C_REF, BETA_V, every=1))
    trainer.train()
    history = probe_history(trainer.state.log_history)
    assert [step for step, _ in history["f1"]] == [0, 1, 2]
    final_logps, labels = independent_logps(trainer.model, tokenizer, records)
    assert history["auroc"][-1][1] == pytest.approx(pairwise_auroc(final_logps, labels), abs=1e-9)


def test_laser_train_with_a_bad_probe_stops_before_any_step(short_answer_model, tokenizer, tmp_path, capsys):
    from test_cli_train import recipe, write_jsonl

    model_dir = tmp_path / "model"
    short_answer_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = write_jsonl(tmp_path / "train.jsonl", [{"problem": f"{a}+{a}", "answer": str(2 * a)} for a in range(8)])
    probe = write_probe(tmp_path, [r | {"acc_list": [0.0] * 4} for r in probe_records()])
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", recipe(tmp_path, model_dir, data, probe_file=str(probe))])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"laser train: error: {probe}: no right finished solution; a probe needs both to measure AUROC and F1"
    )
    assert not list((tmp_path / "run").glob("checkpoint-*"))

    good = write_probe(tmp_path, probe_records(), "good.jsonl")
    main(["train", "--config", recipe(tmp_path, model_dir, data, probe_file=str(good), probe_steps=1)])
    state = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())
    assert [step for step, _ in probe_history(state["log_history"])["auroc"]] == [0, 1, 2]
