import json

import pytest

from laser_rl.cli import main
from laser_rl.testing import REWARD_TOKEN


def test_eval_of_a_graded_scored_file(tmp_path, capsys):
    records = [
        {
            "problem": "1+1",
            "answer": "2",
            "responses": ["\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "none"],
            "pred_answers": ["2", "3", "2", None],
            "acc_list": [1.0, 0.0, 1.0, 0.0],
            "self_rewarding_scores": [0.9, 0.2, 0.7, None],
        },
        {
            "problem": "2+2",
            "answer": "4",
            "responses": ["\\boxed{4}", "\\boxed{5}", "\\boxed{5}", "\\boxed{4.0}"],
            "pred_answers": ["4", "5", "5", "4.0"],
            "acc_list": [1.0, 0.0, 0.0, 1.0],
            "self_rewarding_scores": [0.8, 0.1, 0.3, 0.6],
        },
    ]
    path = tmp_path / "graded.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    main(["eval", str(path), "--out", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(0.5)
    # Every correct solution scores above 0.5 and every wrong one below: a perfect judge.
    assert report["self_verification"]["all"]["f1"] == pytest.approx(1.0)
    scaling = report["scaling"]
    n4 = scaling["n"].index(4)
    # "4" and "4.0" are one answer (math-verify): majority is 2 vs 2 on problem 2, weighted voting picks 4.
    assert scaling["weighted_majority"][n4] == pytest.approx(1.0)
    assert (tmp_path / "report" / "scaling.png").stat().st_size > 1000
    assert "laser eval: 2 problems" in capsys.readouterr().out


def test_eval_generates_grades_and_reports_in_one_go(short_answer_model, tokenizer, tmp_path):
    model_dir = tmp_path / "model"
    short_answer_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+{a}", "answer": str(2 * a)}) + "\n" for a in range(3)))
    out = tmp_path / "eval"
    main(
        ["eval", "--model", str(model_dir), "--data", str(data), "--n", "4", "--out", str(out)]
        + ["--reward-token", REWARD_TOKEN, "--c-ref", "-5", "--max-new-tokens", "4"]
        + ["--prompt-template", "Q: {problem}="]
    )
    graded = [json.loads(line) for line in (out / "graded.jsonl").read_text().splitlines()]
    assert len(graded) == 3 and all(len(r["acc_list"]) == 4 for r in graded)
    assert json.loads((out / "report.json").read_text())["num_solutions"] == 12


def test_an_interrupted_eval_resumes_whatever_evals_own_flags_say(
    short_answer_model, tokenizer, tmp_path, monkeypatch, interrupt_generation
):
    model_dir = tmp_path / "model"
    short_answer_model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{a}+{a}", "answer": str(2 * a)}) + "\n" for a in range(6)))

    def evaluate(out, *flags):
        main(["eval", "--model", str(model_dir), "--data", str(data), "--n", "2", "--out", str(out)]
             + ["--batch-size", "2", "--reward-token", REWARD_TOKEN, "--c-ref", "-5", "--max-new-tokens", "4"]
             + ["--prompt-template", "Q: {problem}=", *flags])  # fmt: skip

    evaluate(tmp_path / "whole")
    interrupt_generation()
    with pytest.raises(SystemExit):
        evaluate(tmp_path / "resumed", "--num-subsets", "7")
    monkeypatch.undo()
    evaluate(tmp_path / "resumed", "--num-subsets", "20")
    for name in ("generated.jsonl", "graded.jsonl"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_eval_without_input_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "give FILE.jsonl" in capsys.readouterr().err
