"""`LaserGRPOTrainer` with TRL's colocated vLLM on vLLM's CPU build (see `laser_rl.vllm_cpu`): the weights TRL
syncs are the ones vLLM generates with, and the rollout's score comes from TRL's old-policy forward."""

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from laser_rl.config import LaserConfig  # noqa: E402
from laser_rl.trainer import LaserGRPOTrainer  # noqa: E402

PROBLEMS = [f"What is {a} + {b}?" for a, b in [(3, 4), (5, 2), (1, 6), (2, 5)]]


def contains_seven(completions, **kwargs):
    return [float("7" in completion) for completion in completions]


def vllm_logps(llm, ids: list[int]) -> list[float]:
    """log pi(ids[t] | ids[:t]) for t >= 1 under vLLM's weights (prompt_logprobs of a one-token request)."""
    from vllm import SamplingParams, TokensPrompt

    [request] = llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(max_tokens=1, prompt_logprobs=0))
    return [entry[token].logprob for entry, token in zip(request.prompt_logprobs[1:], ids[1:], strict=True)]


def hf_logps(model, ids: list[int]) -> list[float]:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].float()
    return logits.log_softmax(-1).gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1).tolist()


def max_difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_colocated_vllm_trains_laser_and_generates_with_the_synced_weights(smollm2, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in PROBLEMS]})
    args = LaserConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        per_device_train_batch_size=8, num_generations=4, max_completion_length=32, max_steps=2, logging_steps=1,
        learning_rate=1e-4, reward_token="<filename>", c_ref=-40.0, self_reward_beta=0.5,
        reasoning_warmup_steps=0, self_reward_warmup_steps=1, self_rewarding_std_threshold=0.0,
        use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.15, vllm_max_model_length=512,
    )  # fmt: skip
    trainer = LaserGRPOTrainer(
        model=str(smollm2), reward_funcs=contains_seven, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROBLEMS[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = [*tokenizer(prompt + "3 + 4 = 7", add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    start = hf_logps(trainer.model, ids)
    assert max_difference(vllm_logps(trainer.vllm_generation.llm, ids), start) < 1e-3
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "laser/phase" in entry]
    assert [entry["laser/phase"] for entry in logs] == [1.0, 2.0]
    # the mixing phase read the rollout's score from TRL's old-policy forward (vLLM's importance sampling)
    assert all(entry["laser/extra_forwards"] == 0.0 for entry in logs) and "laser/mixed_groups" in logs[1]
    trainer.vllm_generation.sync_weights()  # as TRL does before it generates again
    served, trained = vllm_logps(trainer.vllm_generation.llm, ids), hf_logps(trainer.model, ids)
    assert max_difference(trained, start) > 1e-2  # training moved the weights
    assert max_difference(served, trained) < 1e-3  # and vLLM generates with them
