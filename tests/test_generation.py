"""The in-generation self-reward score: equal to a separate forward, untempered, z_c never sampled."""

import copy
import importlib.util

import pytest
import torch

from laser_rl.errors import LaserInputError
from laser_rl.generation import generate_with_scores, load_vllm
from laser_rl.prompts import render_prompts
from laser_rl.scoring import (
    candidate_reward_tokens,
    eos_logprobs,
    last_token_logits,
    record_logps,
    solution_ids,
)
from laser_rl.testing import REWARD_TOKEN, build_model

PROMPTS = ["Q: 1+2=", "Q: 9+9=", "Q: 12+", "Q:"]  # finished, finished, mixed, mostly truncated


def separate_forward_logp(model, tokenizer, prompt: str, token_ids: list[int]) -> float:
    """log pi(z_c | x, y, EOS) from one plain forward over prompt + solution (its EOS included)."""
    ids = tokenizer(prompt, add_special_tokens=False).input_ids + token_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    return logits.float().log_softmax(-1)[tokenizer.convert_tokens_to_ids(REWARD_TOKEN)].item()


def check_against_forward(model, tokenizer, prompts, samples, max_new_tokens) -> float:
    """Assert the in-pass scores of every finished sample match a separate forward; max abs diff."""
    eos = tokenizer.eos_token_id
    diffs = []
    for prompt, group in zip(prompts, samples, strict=True):
        for sample in group:
            if sample.finished:
                assert sample.token_ids[-1] == eos and eos not in sample.token_ids[:-1]
                diffs.append(
                    abs(sample.reward_token_logp - separate_forward_logp(model, tokenizer, prompt, sample.token_ids))
                )
            else:
                assert sample.reward_token_logp is None
                assert eos not in sample.token_ids and len(sample.token_ids) == max_new_tokens
    assert diffs, "no finished sample to check"
    assert max(diffs) < 1e-4
    return max(diffs)


@pytest.fixture
def pad_is_eos_tokenizer(tokenizer):
    """Qwen's layout: the pad token is the EOS token."""
    qwen_like = copy.deepcopy(tokenizer)
    qwen_like.pad_token = qwen_like.eos_token
    return qwen_like


@pytest.mark.parametrize("temperature", [0.6, 1.0])
@pytest.mark.parametrize("pad_is_eos", [False, True])
def test_in_pass_score_equals_separate_forward(
    short_answer_model, tokenizer, pad_is_eos_tokenizer, temperature, pad_is_eos
):
    tok = pad_is_eos_tokenizer if pad_is_eos else tokenizer
    z = tok.convert_tokens_to_ids(REWARD_TOKEN)
    samples = generate_with_scores(
        short_answer_model, tok, PROMPTS, 3, z, temperature=temperature, max_new_tokens=3, seed=0, batch_size=5
    )
    assert [len(group) for group in samples] == [3] * len(PROMPTS)
    flat = [sample for group in samples for sample in group]
    assert any(sample.finished for sample in flat) and not all(sample.finished for sample in flat)
    check_against_forward(short_answer_model, tok, PROMPTS, samples, max_new_tokens=3)
    # The batched after-the-fact forward (left padding) agrees too, from the sampled ids or (with this
    # character-level tokenizer, which encodes text back to the same ids) from the text.
    for prompt, group in zip(PROMPTS, samples, strict=True):
        record = {"responses": [s.text for s in group], "finished": [s.finished for s in group]}
        for given in (record, record | {"response_token_ids": [s.token_ids for s in group]}):
            logps = record_logps(short_answer_model, tok, given, prompt, z, tok.eos_token_id, 2)
            for logp, sample in zip(logps, group, strict=True):
                assert (logp is None) == (not sample.finished)
                assert logp is None or abs(logp - sample.reward_token_logp) < 1e-4


@pytest.mark.parametrize("prompts", [["Q: 12+"], ["Q: 12+", "Q:", "Q: 1+2="]], ids=["alone", "in a batch"])
def test_solution_ending_at_the_last_allowed_step_is_scored(short_answer_model, tokenizer, prompts):
    """Greedy answers 'Q: 12+' with '=1' + EOS: with 3 new tokens its EOS is the last allowed token."""
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    samples = generate_with_scores(short_answer_model, tokenizer, prompts, 1, z, temperature=0, max_new_tokens=3)
    last_step = samples[0][0]
    assert last_step.finished and len(last_step.token_ids) == 3
    check_against_forward(short_answer_model, tokenizer, prompts, samples, max_new_tokens=3)
    # One token fewer and it is truncated: no EOS, no score.
    truncated = generate_with_scores(short_answer_model, tokenizer, prompts[:1], 1, z, temperature=0, max_new_tokens=2)
    assert not truncated[0][0].finished and truncated[0][0].reward_token_logp is None


def test_score_does_not_depend_on_the_sampling_temperature(short_answer_model, tokenizer):
    """top_k=1 makes both temperatures pick the same solutions; a tempered score would differ."""
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    runs = [
        generate_with_scores(short_answer_model, tokenizer, PROMPTS, 2, z, temperature=t, top_k=1, max_new_tokens=3)
        for t in (0.6, 1.0)
    ]
    assert runs[0] == runs[1]
    assert any(sample.finished for group in runs[0] for sample in group)


def test_reward_token_is_never_sampled_but_still_scored(tokenizer):
    """A model that puts almost all its mass on z_c: it is never sampled, and its score shows that mass."""
    model = build_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_length=64).eval()
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    with torch.no_grad():
        model.lm_head.weight[z] *= 50  # tied with the input embedding, which z_c never enters
        model.lm_head.weight[tokenizer.eos_token_id] *= 20
    samples = generate_with_scores(model, tokenizer, PROMPTS, 4, z, max_new_tokens=6, seed=1)
    flat = [sample for group in samples for sample in group]
    assert all(z not in sample.token_ids for sample in flat)
    assert any(sample.finished for sample in flat)
    check_against_forward(model, tokenizer, PROMPTS, samples, max_new_tokens=6)


def test_seeded_generation_is_reproducible(short_answer_model, tokenizer):
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    first, second = (
        generate_with_scores(short_answer_model, tokenizer, PROMPTS, 2, z, max_new_tokens=3, seed=7) for _ in range(2)
    )
    assert first == second


def test_eos_logprobs_reads_every_candidate_at_the_eos(short_answer_model, tokenizer):
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    sequences = [solution_ids(tokenizer, prompt, "7", tokenizer.eos_token_id) for prompt in PROMPTS]
    candidates = candidate_reward_tokens(tokenizer, PROMPTS)
    assert candidates == {REWARD_TOKEN: z}  # pad, EOS and BOS are never candidates
    logps = eos_logprobs(short_answer_model, tokenizer, sequences, [z, tokenizer.eos_token_id], batch_size=3)
    for row, sequence in zip(logps, sequences, strict=True):
        with torch.no_grad():
            expected = short_answer_model(torch.tensor([sequence])).logits[0, -1].log_softmax(-1)
        torch.testing.assert_close(row, expected[[z, tokenizer.eos_token_id]], atol=1e-4, rtol=0)


def test_last_token_logits_carry_gradients_for_a_score_loss(short_answer_model, tokenizer):
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    sequences = [
        solution_ids(tokenizer, prompt, "7" * (1 + i), tokenizer.eos_token_id) for i, prompt in enumerate(PROMPTS)
    ]
    logits = last_token_logits(short_answer_model, tokenizer, sequences)
    torch.testing.assert_close(
        logits.log_softmax(-1)[:, z].detach(), eos_logprobs(short_answer_model, tokenizer, sequences, [z])[:, 0]
    )
    logits.log_softmax(-1)[:, z].sum().backward()
    gradient = short_answer_model.get_output_embeddings().weight.grad
    assert gradient is not None and gradient[z].abs().sum() > 0
    short_answer_model.zero_grad()


def test_render_prompts_keeps_braces_and_needs_the_placeholder(tokenizer):
    assert render_prompts(tokenizer, ["1+1"], "{problem} in \\boxed{}", chat=False) == ["1+1 in \\boxed{}"]
    with pytest.raises(LaserInputError, match="must contain"):
        render_prompts(tokenizer, ["1+1"], "no placeholder", chat=False)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_backend_refuses_clearly_without_vllm():
    with pytest.raises(LaserInputError, match="vLLM is not installed; `make vllm`"):
        load_vllm("any-model", seed=0)


def test_generation_leaves_the_callers_random_state_alone(short_answer_model, tokenizer):
    z = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = generate_with_scores(short_answer_model, tokenizer, PROMPTS, 2, z, max_new_tokens=3, seed=7)
    assert torch.equal(torch.rand(3), expected)
    again = generate_with_scores(short_answer_model, tokenizer, PROMPTS, 2, z, max_new_tokens=3, seed=7)
    assert [[s.token_ids for s in group] for group in first] == [[s.token_ids for s in group] for group in again]
