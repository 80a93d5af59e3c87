"""The embedded addition task and the SFT warm start."""

import random
import re
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from laser_rl.demo.task import (
    Problem,
    corrupted_solution,
    exact_match_reward,
    max_solution_length,
    sample_problems,
    solution,
    to_dataset,
    verify,
)
from laser_rl.demo.warmstart import DEFAULT, WarmStartSettings, sample_accuracy, warm_start
from laser_rl.testing import EOS, REWARD_TOKEN, build_tokenizer
from laser_rl.tokens import check_reward_token_unused, resolve_reward_token

LINE = re.compile(r"(\d)\+(\d)(?:\+(1))?=(\d+) c([01])")
TINY = WarmStartSettings(
    num_examples=64, max_steps=3, batch_size=8, learning_rate=1e-3, hidden_size=32, num_layers=1, num_heads=2
)


def wrong_lines(text: str) -> int:
    """Working lines whose column sum or carry is arithmetically wrong."""
    wrong = 0
    for x, y, carry_in, total, carry_out in LINE.findall(text):
        expected = int(x) + int(y) + int(carry_in or 0)
        wrong += int(total) != expected or int(carry_out) != expected // 10
    return wrong


def test_splits_are_disjoint_and_deterministic():
    train = sample_problems(3000, "train", seed=0)
    test = sample_problems(600, "test", seed=1)
    assert len({p.text for p in train}) == 3000 and len({p.text for p in test}) == 600
    assert not {p.text for p in train} & {p.text for p in test}
    assert {p.split for p in train} == {"train"} and {p.split for p in test} == {"test"}
    assert sample_problems(50, "train", seed=0) == train[:50]
    assert sample_problems(50, "train", seed=1) != train[:50]


def test_digits_knob():
    problems = sample_problems(200, "train", seed=0, digits=(1, 4))
    assert {len(str(p.a)) for p in problems} == {1, 2, 3, 4}
    assert max(len(solution(p)) + 1 for p in problems) <= max_solution_length((1, 4))
    with pytest.raises(ValueError):
        sample_problems(50, "test", digits=(1, 1))  # about 20 one-digit test problems exist
    with pytest.raises(ValueError):
        sample_problems(5, "train", digits=(3, 2))


def test_gold_solution_is_right_and_short():
    assert solution(Problem(4728, 395)) == "8+5=13 c1\n2+9+1=12 c1\n7+3+1=11 c1\n4+0+1=5 c0\n\\boxed{5123}"
    assert solution(Problem(999, 1)).endswith("\\boxed{1000}")
    for problem in sample_problems(500, "test", seed=0, digits=(1, 4)):
        gold = solution(problem)
        assert verify(gold, problem.answer) == 1.0
        assert int(problem.answer) == problem.a + problem.b
        assert wrong_lines(gold) == 0
    # Default difficulty: prompt and solution stay far below 120 characters.
    problem = Problem(999, 999)
    assert len(problem.prompt) + max_solution_length() < 80


def test_corrupted_solution_is_wrong_in_one_visible_line():
    rng = random.Random(0)
    for problem in sample_problems(500, "test", seed=0, digits=(1, 4)):
        bad = corrupted_solution(problem, rng)
        assert verify(bad, problem.answer) == 0.0
        assert wrong_lines(bad) == 1
        assert all(int(total) == int(x) + int(y) + int(c or 0) for x, y, c, total, _ in LINE.findall(bad))
        error = abs(int(re.search(r"boxed\{(\d+)\}", bad)[1]) - int(problem.answer))
        assert error in (10, 100, 1000, 10000)


def test_verify_reads_the_last_box_exactly():
    assert verify("\\boxed{12}\n\\boxed{34}", "34") == 1.0
    assert verify("\\boxed{34}\n\\boxed{12}", "34") == 0.0
    assert verify("\\boxed{ 34 }", "34") == 1.0
    assert verify("34", "34") == 0.0
    assert verify("\\boxed{034}", "34") == 0.0
    rewards = exact_match_reward(completions=["\\boxed{3}", "\\boxed{4}"], answer=["3", "3"], prompts=[])
    assert rewards == [1.0, 0.0]


def test_datasets_have_trl_columns_and_eos():
    problems = sample_problems(400, "train", seed=0)
    prompts = to_dataset(problems)
    assert prompts.column_names == ["prompt", "answer"]
    assert prompts[0] == {"prompt": problems[0].prompt, "answer": problems[0].answer}
    sft = to_dataset(problems, completions=True)
    assert sft.column_names == ["prompt", "answer", "completion"]
    assert all(c.endswith(EOS) and c.count(EOS) == 1 for c in sft["completion"])
    noisy = to_dataset(problems, completions=True, noise=0.5, seed=3)
    wrong = [verify(c, a) == 0.0 for c, a in zip(noisy["completion"], noisy["answer"], strict=True)]
    assert 0.4 < sum(wrong) / len(wrong) < 0.6
    assert noisy["completion"] == to_dataset(problems, completions=True, noise=0.5, seed=3)["completion"]
    with pytest.raises(ValueError):
        to_dataset(problems, noise=0.5)


def test_warm_start_weights_do_not_depend_on_the_thread_count(tmp_path):
    """The demo warm-starts on as many threads as it has cores, up to 2: the same seed must give the same model
    on the same thread count, and one that differs by rounding only on another. Bit-identical on the AMD EPYC
    these tests first ran on; on an Intel Xeon (MKL) 1 and 2 threads differ in rounding (within 1e-4 here)."""
    settings = replace(DEFAULT, num_examples=160, max_steps=6)
    threads = torch.get_num_threads()
    weights = []
    try:
        for run, count in enumerate((1, 2, 2)):
            torch.set_num_threads(count)
            weights.append(load_file(warm_start(tmp_path / f"run-{run}", settings) / "model.safetensors"))
    finally:
        torch.set_num_threads(threads)
    assert weights[0].keys() == weights[1].keys() == weights[2].keys()
    assert all(torch.equal(weights[1][name], weights[2][name]) for name in weights[0])
    assert all(torch.allclose(weights[0][name], weights[1][name], rtol=0, atol=1e-4) for name in weights[0])


@pytest.fixture(scope="module")
def warm_dir(tmp_path_factory):
    return warm_start(tmp_path_factory.mktemp("warm"), TINY)


def test_warm_start_saves_a_reloadable_model(warm_dir):
    model = AutoModelForCausalLM.from_pretrained(warm_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(warm_dir)
    assert model.config.hidden_size == TINY.hidden_size and model.config.num_hidden_layers == TINY.num_layers
    assert tokenizer.get_vocab() == build_tokenizer().get_vocab()
    assert tokenizer.eos_token == EOS and tokenizer.pad_token_id != tokenizer.eos_token_id
    # z_c is still one token, and neither prompts nor SFT completions ever use it.
    reward_id = resolve_reward_token(tokenizer, REWARD_TOKEN)
    assert tokenizer.encode(REWARD_TOKEN) == [reward_id]
    sft = to_dataset(sample_problems(200, "train", seed=0), completions=True, noise=0.5)
    check_reward_token_unused(tokenizer, reward_id, list(sft["prompt"]) + list(sft["completion"]), "SFT data")

    problems = sample_problems(8, "test", seed=0)
    accuracy = sample_accuracy(model, tokenizer, problems, n=2, max_new_tokens=16, seed=5)
    assert 0.0 <= accuracy <= 1.0
    assert accuracy == sample_accuracy(model, tokenizer, problems, n=2, max_new_tokens=16, seed=5)


def test_warm_start_tokenizer_reloads_with_auto_tokenizer(warm_dir):
    tokenizer = AutoTokenizer.from_pretrained(warm_dir)
    text = Problem(472, 395).prompt + solution(Problem(472, 395)) + EOS
    assert tokenizer(text)["input_ids"] == build_tokenizer()(text)["input_ids"]
