"""`laser generate --backend vllm` on vLLM's CPU build: the in-pass score equals the transformers path's."""

import json

import pytest

pytest.importorskip("vllm")

import laser_rl.workflows  # noqa: E402
from laser_rl.cli import main  # noqa: E402
from laser_rl.generation import generate_with_scores_vllm, load_model, load_tokenizer  # noqa: E402
from laser_rl.scoring import score_solutions  # noqa: E402

REWARD_TOKEN = "<filename>"  # one of SmolLM2's unused special tokens
PROBLEMS = [f"What is {a} + {b}? Put the answer in \\boxed{{}}." for a, b in [(3, 4), (12, 30)]]


def chat_prompts(tokenizer) -> list[str]:
    messages = [[{"role": "user", "content": problem}] for problem in PROBLEMS]
    return [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]


def test_in_pass_scores_equal_a_transformers_forward_of_the_same_ids(engine, smollm2):
    tokenizer = load_tokenizer(str(smollm2))
    reward_token_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    prompts = chat_prompts(tokenizer)
    groups = generate_with_scores_vllm(engine, prompts, 4, reward_token_id, max_new_tokens=40, seed=0)
    samples = [(prompt, sample) for prompt, group in zip(prompts, groups, strict=True) for sample in group]
    finished = [(prompt, sample) for prompt, sample in samples if sample.finished]
    assert finished and len(finished) < len(samples)  # both kinds, at 40 tokens
    assert all(sample.reward_token_logp is None for _, sample in samples if not sample.finished)
    assert all(reward_token_id not in sample.token_ids for _, sample in samples)
    expected = score_solutions(
        load_model(str(smollm2)), tokenizer, [p for p, _ in finished], [s.token_ids for _, s in finished],
        reward_token_id, tokenizer.eos_token_id,
    )  # fmt: skip
    for (_, sample), logp in zip(finished, expected, strict=True):
        assert sample.token_ids[-1] == tokenizer.eos_token_id
        assert sample.reward_token_logp == pytest.approx(logp, abs=1e-4)


def test_laser_generate_with_the_vllm_backend_survives_a_dead_engine_and_resumes(
    engine, smollm2, tmp_path, monkeypatch, capsys
):
    from vllm.v1.engine.exceptions import EngineDeadError

    monkeypatch.setattr(laser_rl.workflows, "load_vllm", lambda model, seed: engine)
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"problem": p, "answer": "7"}) + "\n" for p in PROBLEMS))
    reference, out = tmp_path / "reference.jsonl", tmp_path / "out.jsonl"
    flags = ["--model", str(smollm2), "--data", str(data), "--n", "2", "--batch-size", "2", "--backend", "vllm"]
    flags += [
        "--reward-token",
        REWARD_TOKEN,
        "--c-ref",
        "-40",
        "--max-new-tokens",
        "40",
        "--prompt-template",
        "{problem}",
    ]
    main(["generate", *flags, "--out", str(reference)])  # one problem a window: two windows
    records = [json.loads(line) for line in reference.read_text().splitlines()]
    assert [len(r["responses"]) for r in records] == [2, 2] and any(any(r["finished"]) for r in records)
    for record in records:
        for done, logp, score in zip(
            record["finished"], record["reward_token_logps"], record["self_rewarding_scores"], strict=True
        ):
            assert (logp is None) == (not done) and (score is None) == (not done)
            assert not done or score == pytest.approx(0.1 * (logp + 40))

    class DiesOnTheSecondWindow:  # the engine as vLLM's own EngineDeadError leaves it, half-way through the file
        windows = 0

        def get_tokenizer(self):  # read once a window
            self.windows += 1
            return engine.get_tokenizer()

        def generate(self, *args, **kwargs):
            if self.windows == 2:
                raise EngineDeadError()
            return engine.generate(*args, **kwargs)

    monkeypatch.setattr(laser_rl.workflows, "load_vllm", lambda model, seed: DiesOnTheSecondWindow())
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", *flags, "--out", str(out)])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "vLLM's engine stopped" in message and "run the same command again to resume" in message
    assert not out.exists()
    monkeypatch.setattr(laser_rl.workflows, "load_vllm", lambda model, seed: engine)
    main(["generate", *flags, "--out", str(out)])
    assert out.read_bytes() == reference.read_bytes()
