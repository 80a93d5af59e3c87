"""`laser generate`, `score`, `grade` and `calibrate` end to end on a tiny model saved like a Hub model."""

import json
import shutil

import pytest

from laser_rl.cli import main
from laser_rl.jsonl import read_jsonl
from laser_rl.testing import REWARD_TOKEN

PROBLEMS = [
    {"problem": f"Q: {a}+{b}=", "answer": str(a + b), "id": i}
    for i, (a, b) in enumerate([(1, 2), (9, 9), (3, 4), (5, 0), (2, 7), (8, 1)])
]
FAST = ["--prompt-template", "{problem}", "--max-new-tokens", "3", "--batch-size", "4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, _short_answer_model, tokenizer):
    path = tmp_path_factory.mktemp("model")
    _short_answer_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "laser_config.json").write_text(json.dumps({"reward_token": REWARD_TOKEN}))  # its z_c, no c_ref yet
    return path


@pytest.fixture
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(problem) + "\n" for problem in PROBLEMS))
    return path


def generate(model_dir, data, out, *extra):
    main(["generate", "--model", str(model_dir), "--data", str(data), "--n", "2", "--out", str(out), *FAST, *extra])


def test_generate_writes_the_authors_format_and_score_agrees(model_dir, problems_file, tmp_path):
    out, rescored = tmp_path / "out.jsonl", tmp_path / "scored.jsonl"
    generate(model_dir, problems_file, out, "--c-ref", "-7", "--beta-v", "0.1")
    records = read_jsonl(out)
    assert [record["id"] for record in records] == list(range(len(PROBLEMS)))
    finished_count = 0
    for record in records:
        assert len(record["responses"]) == len(record["finished"]) == len(record["reward_token_logps"]) == 2
        for done, logp, score in zip(
            record["finished"], record["reward_token_logps"], record["self_rewarding_scores"], strict=True
        ):
            assert (logp is None) == (score is None) == (not done)
            finished_count += done
            if done:
                assert score == pytest.approx(0.1 * (logp + 7))
    assert finished_count > 0
    main(
        [
            "score",
            str(out),
            str(rescored),
            "--model",
            str(model_dir),
            "--c-ref",
            "-7",
            "--prompt-template",
            "{problem}",
        ]
    )
    for record, again in zip(records, read_jsonl(rescored), strict=True):
        for logp, other in zip(record["reward_token_logps"], again["reward_token_logps"], strict=True):
            assert (logp is None and other is None) or abs(logp - other) < 1e-4


def test_generate_resumes_after_an_interruption(
    model_dir, problems_file, tmp_path, monkeypatch, capsys, interrupt_generation
):
    reference, out = tmp_path / "reference.jsonl", tmp_path / "out.jsonl"
    generate(model_dir, problems_file, reference, "--c-ref", "-7")
    interrupt_generation()
    with pytest.raises(SystemExit) as exit_info:
        generate(model_dir, problems_file, out, "--c-ref", "-7")
    assert exit_info.value.code == 130
    partial = tmp_path / "out.jsonl.partial"
    assert not out.exists() and partial.read_text().count("\n") == 1 + 4  # header + two batches of 2 problems
    with partial.open("a") as file:
        file.write('{"index": 4, "rec')  # and a torn line, as a kill -9 mid-write leaves
    monkeypatch.undo()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        generate(model_dir, problems_file, out, "--c-ref", "-7", "--seed", "1")
    assert "other settings (seed: 0 then, 1 now)" in capsys.readouterr().err
    generate(model_dir, problems_file, out, "--c-ref", "-7")
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists()


def test_grade_adds_boxed_answers_and_accuracy(tmp_path):
    source, graded = tmp_path / "in.jsonl", tmp_path / "graded.jsonl"
    responses = ["so it is \\boxed{3}", "\\boxed{4}", "no box", "\\boxed{\\frac{6}{2}}"]
    source.write_text(json.dumps({"problem": "1+2", "answer": "3", "responses": responses}) + "\n")
    main(["grade", str(source), str(graded)])
    [record] = read_jsonl(graded)
    assert record["pred_answers"] == ["3", "4", None, "\\frac{6}{2}"]
    assert record["acc_list"] == [1.0, 0.0, 0.0, 1.0]


def test_grade_with_the_verifiers_of_training(tmp_path, monkeypatch):
    source, graded = tmp_path / "in.jsonl", tmp_path / "graded.jsonl"
    options = ["Carbon", "Oxygen", "Neon"]
    responses = ["The answer is (B).", "\\boxed{Oxygen}", "Answer: Carbon", "\\boxed{A}"]
    source.write_text(json.dumps({"problem": "Which?", "choices": options, "answer": "B", "responses": responses}))
    main(["grade", str(source), str(graded), "--verifier", "choice"])
    [record] = read_jsonl(graded)
    assert record["pred_answers"] == ["B", "B", None, "A"] and record["acc_list"] == [1.0, 1.0, 0.0, 0.0]

    source.write_text(json.dumps({"problem": "Capital?", "answer": "Paris", "responses": ["\\boxed{paris.}", "Rome"]}))
    main(["grade", str(source), str(graded), "--verifier", "exact"])
    [record] = read_jsonl(graded)
    assert record["pred_answers"] == ["paris", "rome"] and record["acc_list"] == [1.0, 0.0]

    # a verifier of one's own sees the record's fields; what it cannot judge is null
    (tmp_path / "own.py").write_text(
        "def unsure_unless_boxed(completions, answer, problem, **kwargs):\n"
        "    assert problem == ['Capital?'] * len(completions)\n"
        "    return [1.0 if '\\\\boxed' in c else None for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "own", raising=False)
    main(["grade", str(source), str(graded), "--verifier", "own:unsure_unless_boxed"])
    [record] = read_jsonl(graded)
    assert record["pred_answers"] == ["paris.", None] and record["acc_list"] == [1.0, None]


def test_a_verifier_reward_outside_0_1_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "own.py").write_text(
        "def too_sure(completions, answer, **kwargs):\n    return [2.0] * len(completions)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, "own", raising=False)
    (tmp_path / "in.jsonl").write_bytes(GOOD)
    with pytest.raises(SystemExit) as exit_info:
        main(["grade", "in.jsonl", "out.jsonl", "--verifier", "own:too_sure"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (
        "laser grade: error: verifier own:too_sure: reward 2.0 for completion 0 is not a number in [0, 1] (or None)"
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_calibrate_saves_c_ref_that_generate_then_uses(model_dir, problems_file, tmp_path, capsys):
    own_dir = tmp_path / "model"
    shutil.copytree(model_dir, own_dir)
    main(["calibrate", "--model", str(own_dir), "--data", str(problems_file), "--n", "2", *FAST, "--save"])
    printed = capsys.readouterr().out
    config = json.loads((own_dir / "laser_config.json").read_text())
    assert config["reward_token"] == "<|reward|>" and f"c_ref = {config['c_ref']:.4f}" in printed
    assert "Z(x, y) ~ 1 fails" in printed  # a random-init-sized vocabulary gives z_c far too much mass
    out = tmp_path / "out.jsonl"
    generate(own_dir, problems_file, out)
    record = read_jsonl(out)[0]
    pairs = zip(record["reward_token_logps"], record["self_rewarding_scores"], strict=True)
    logp, score = next((logp, score) for logp, score in pairs if logp is not None)
    assert score == pytest.approx(0.1 * (logp - config["c_ref"]))


def test_calibrate_suggest_ranks_unused_special_tokens_on_given_responses(model_dir, tmp_path, capsys):
    data = tmp_path / "responses.jsonl"
    data.write_text(json.dumps({"problem": "Q: 1+2=", "responses": ["3", "4"], "finished": [True, False]}) + "\n")
    main(["calibrate", "--model", str(model_dir), "--data", str(data), "--suggest", "--prompt-template", "{problem}"])
    printed = capsys.readouterr().out
    assert "use: --reward-token '<|reward|>'" in printed and "over 1 solutions" in printed


GOOD = b'{"problem": "Q: 1+2=", "answer": "3", "responses": ["3"]}\n'
GENERATE = "generate --model {model} --data {data} --n 1 --out {out}"
SCORE = "score {data} {out} --model {model} --c-ref -7"
BAD_INPUTS = {  # input bytes, command line, what the message says
    "missing model dir": (GOOD, GENERATE + " --c-ref -7 --model {tmp}/missing", "missing: no such model folder"),
    "token not one token": (
        GOOD,
        GENERATE + " --c-ref -7 --reward-token abc",
        "--reward-token: 'abc' is not a single",
    ),
    "token id outside vocab": (
        GOOD,
        GENERATE + " --c-ref -7 --reward-token 99999",
        "id 99999 is outside the vocabulary",
    ),
    "invalid json": (GOOD + b"{oops\n", GENERATE + " --c-ref -7", "in.jsonl:2: invalid JSON"),
    "missing field": (b'{"responses": ["3"]}\n', SCORE, "in.jsonl:1: missing field 'problem'"),
    "empty responses": (b'{"problem": "x", "responses": []}\n', SCORE, "in.jsonl:1: field 'responses' is empty"),
    "not utf-8": (b'{"answer": "3", "responses": ["\xe9"]}\n', "grade {data} {out}", "in.jsonl:1: not UTF-8"),
    "no c_ref": (GOOD, GENERATE, "--c-ref: not given"),
    "no z_c": (GOOD, GENERATE + " --c-ref -7 --model {bare}", "the tokenizer has no <|vision_start|>"),
    "vllm without vllm": (GOOD, GENERATE + " --c-ref -7 --backend vllm", "--backend: vLLM is not installed"),
    "unknown verifier": (GOOD, "grade {data} {out} --verifier nonsense", "--verifier nonsense: no such verifier"),
    "verifier that does not import": (GOOD, "grade {data} {out} --verifier no_such:f", "cannot import no_such"),
    "gold not a letter": (GOOD, "grade {data} {out} --verifier choice", "gold answer '3' is not an option letter"),
}


@pytest.mark.parametrize(("data", "command", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_one_line_exit_2_and_no_output(
    data, command, message, model_dir, tmp_path_factory, tmp_path, capsys
):
    source = tmp_path / "in.jsonl"
    source.write_bytes(data)
    bare = tmp_path_factory.mktemp("bare")  # the model without its laser_config.json
    shutil.copytree(model_dir, bare, dirs_exist_ok=True, ignore=shutil.ignore_patterns("laser_config.json"))
    places = {"model": model_dir, "data": source, "out": tmp_path / "out.jsonl", "tmp": tmp_path, "bare": bare}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([part.format(**places) for part in command.split()])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"laser {command.split()[0]}: error:") and message in err
    assert [path.name for path in tmp_path.iterdir()] == ["in.jsonl"]
