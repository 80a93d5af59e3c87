"""The trainer on the TRL code paths that the default settings never run: gradient accumulation,
several generations per optimizer step and iterations per generation (TRL then keeps the old
policy's log-probs), a reference model (beta > 0), LoRA through PEFT, and the rollout's score read
during generation. Each check compares with an independent computation: a stock `GRPOTrainer`
and plain forwards with z_c really written after the EOS."""

import copy

import pytest
import torch
from peft import LoraConfig
from support import (
    BETA_V,
    C_REF,
    NUM_GENERATIONS,
    common_args,
    dataset,
    even_length_reward,
    laser_fields,
    plain_reward_token_logps,
    spy_scores,
)
from trl import GRPOConfig, GRPOTrainer

from laser_rl.config import LaserConfig
from laser_rl.core import reward_token_positions, self_reward_scores
from laser_rl.trainer import LaserGRPOTrainer

ALPHA = 0.5
# TRL keeps old-policy log-probs when generation is out of step with the optimizer: gradient accumulation 2 is
# not a multiple of steps_per_generation * num_iterations = 8. The MSE is scaled by steps_per_generation / GA = 2.
OFF_STEP = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, steps_per_generation=4, num_iterations=2)


def class_weights_by_hand(completions: list[list[int]], rewards: list[float], eos_token_ids) -> dict[tuple, float]:
    """The MSE weight of each completion of one generation batch, counted by hand: finished ones (an EOS among
    their ids) of a class of n_k weigh n / (2 n_k), then / n (the trainer's pre-division); truncated ones 0."""
    finished = [any(token in eos_token_ids for token in ids) for ids in completions]
    n = sum(finished)
    counts = {label: sum(f and r == label for f, r in zip(finished, rewards, strict=True)) for label in (0.0, 1.0)}
    return {
        tuple(ids): (n / (2 * counts[r]) / n if done else 0.0)
        for ids, r, done in zip(completions, rewards, finished, strict=True)
    }


def saved_model(model, tokenizer, path) -> str:
    """TRL builds its reference model (beta > 0) from the policy's folder."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def laser(model, tokenizer, tmp_path, peft_config=None, **overrides) -> LaserGRPOTrainer:
    phases = dict(
        self_reward_warmup_steps=0,
        self_reward_loss_coef=ALPHA,
        self_rewarding_advantage_coef=0.5,
        self_rewarding_std_threshold=0.0,
    )
    return LaserGRPOTrainer(
        model,
        even_length_reward,
        LaserConfig(**laser_fields(tmp_path, **{**phases, **overrides})),
        dataset(),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def rollout(trainer, prompts: list[str] = ("Q: 1+2=", "Q: 3+3=")) -> dict:
    torch.manual_seed(0)
    return trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(NUM_GENERATIONS)])


def count_forwards(trainer) -> list[int]:
    """Rows of each `_get_per_token_logps_and_entropies` call on `trainer` from now on."""
    rows = []
    original = trainer._get_per_token_logps_and_entropies

    def spy(model, input_ids, *args, **kwargs):
        rows.append(input_ids.size(0))
        return original(model, input_ids, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = spy
    return rows


def test_rollout_scores_are_read_during_generation(short_answer_model, tokenizer, tmp_path):
    """With the HF backend the rollout's score needs no forward but for rows whose EOS came at the
    batch's last decoding step (there is no step after it); the scores equal a plain forward's."""
    initial = copy.deepcopy(short_answer_model)
    trainer = laser(short_answer_model, tokenizer, tmp_path, max_completion_length=8)
    forwards = count_forwards(trainer)
    scores = spy_scores(trainer)
    batch = rollout(trainer, ["Q: 1+2=", "Q: 9+8", "Q: 2", "Q:"])  # cut-off questions: answers of every length
    eos_index, finished = reward_token_positions(
        batch["completion_ids"], batch["completion_mask"], trainer.eos_token_ids
    )
    at_last_step = finished & (eos_index == batch["completion_ids"].size(1) - 1)
    assert finished.sum() > at_last_step.sum() > 0 and not finished.all()  # read in generate, by forward, none
    assert forwards == ([int(at_last_step.sum())] if at_last_step.any() else [])
    expected, _ = plain_reward_token_logps(
        initial, batch, trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id
    )
    torch.testing.assert_close(scores[0][finished], expected[finished], atol=1e-5, rtol=0)
    assert (scores[0][~finished] == 0).all()


def test_scores_come_from_trls_named_forwards_when_it_runs_them(short_answer_model, tokenizer, tmp_path):
    """Out-of-step generation and beta > 0: TRL runs an old-policy forward and a reference forward.
    The rollout's score and the reference's are taken from those (no third forward), each from its own."""
    initial = copy.deepcopy(short_answer_model)
    path = saved_model(short_answer_model, tokenizer, tmp_path / "model")
    trainer = laser(path, tokenizer, tmp_path, beta=0.1, c_ref="exact", **OFF_STEP)
    # Make the reference differ from the policy, so that swapping the two would be seen.
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    policy = copy.deepcopy(trainer.model)
    forwards = count_forwards(trainer)
    scores = spy_scores(trainer)
    batch = rollout(trainer)
    assert "old_per_token_logps" in batch and "ref_per_token_logps" in batch
    assert len(forwards) == 2  # TRL's two; none added
    ids = (trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id)
    expected_policy, finished = plain_reward_token_logps(policy, batch, *ids)
    expected_reference, _ = plain_reward_token_logps(initial, batch, *ids)
    assert finished.any()
    assert not torch.allclose(expected_policy[finished], expected_reference[finished], atol=1e-3)
    torch.testing.assert_close(
        batch["reference_reward_token_logps"][finished], expected_reference[finished], atol=1e-5, rtol=0
    )
    torch.testing.assert_close(scores[0][finished], expected_policy[finished], atol=1e-5, rtol=0)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "LoRA"])
def test_loss_and_gradients_in_real_training_with_accumulation_iterations_and_a_reference(
    short_answer_model, tokenizer, tmp_path, lora
):
    """Every micro-batch of a real `train()` (GA 2, 4 steps per generation, 2 iterations, beta 0.1), with the
    whole model or a LoRA adapter trained: LaSeR's loss and gradients = a stock GRPOTrainer's on the same
    micro-batch + alpha * scale * the class-balanced MSE of scores from a plain forward, at the weights of
    that moment."""
    path = saved_model(short_answer_model, tokenizer, tmp_path / "model")
    fields = dict(common_args(tmp_path), beta=0.1, max_steps=5, **OFF_STEP)
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if lora else None
    grpo = GRPOTrainer(
        path, even_length_reward, GRPOConfig(**fields), dataset(), processing_class=tokenizer, peft_config=peft_config
    )
    checked, oracle_weights = [], {}

    class Checked(LaserGRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            completions = [
                ids[mask.bool()].tolist()
                for ids, mask in zip(batch["completion_ids"], batch["completion_mask"], strict=True)
            ]
            oracle_weights.clear()  # each generation batch weighs its own classes
            oracle_weights.update(
                class_weights_by_hand(completions, batch["verifier_rewards"].tolist(), self.eos_token_ids)
            )
            return batch

        def _compute_loss(self, model, inputs):
            assert "old_per_token_logps" in inputs and "ref_per_token_logps" in inputs
            loss = super()._compute_loss(model, inputs)
            parameters = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, parameters, retain_graph=True)
            grpo.model.load_state_dict(model.state_dict())
            grpo.model.train(model.training)
            grpo.current_gradient_accumulation_steps = self.current_gradient_accumulation_steps  # set by train()
            grpo_inputs = {k: v for k, v in inputs.items() if k not in ("verifier_rewards", "self_reward_weights")}
            expected = grpo._compute_loss(grpo.model, grpo_inputs)
            logps, finished = plain_reward_token_logps(
                grpo.model, inputs, self.reward_token_id, self.eos_token_ids, tokenizer.pad_token_id, grad=True
            )
            scores = self_reward_scores(logps, C_REF, BETA_V)
            rows = zip(inputs["completion_ids"], inputs["completion_mask"], strict=True)
            weights = torch.tensor([oracle_weights[tuple(ids[mask.bool()].tolist())] for ids, mask in rows])
            mse = (weights * (scores - inputs["verifier_rewards"]) ** 2).sum()
            # the micro-batches of an optimizer step add up: steps_per_generation of them make a generation batch
            scale = OFF_STEP["steps_per_generation"] / OFF_STEP["gradient_accumulation_steps"]
            expected = expected + ALPHA * scale * mse
            expected_grads = torch.autograd.grad(expected, [p for p in grpo.model.parameters() if p.requires_grad])
            checked.append((loss.item(), expected.item(), mse.item()))
            for grad, expected_grad in zip(grads, expected_grads, strict=True):
                torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-4)
            return loss

    trainer = Checked(
        path,
        even_length_reward,
        LaserConfig(**laser_fields(tmp_path, **fields, self_reward_warmup_steps=1, self_reward_loss_coef=ALPHA)),
        dataset(),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    # 5 steps x GA 2 micro-batches; a generation batch (4 micro-batches, 2 iterations) serves 4 steps, so the
    # second generation comes at step 4, with self-rewarding advantages on.
    assert len(checked) == 5 * 2
    for loss, expected, _ in checked:
        assert loss == pytest.approx(expected, abs=1e-5)
    assert any(mse > 0 for _, _, mse in checked)


def test_lora_rollout_scores_are_read_during_generation_through_the_adapter(short_answer_model, tokenizer, tmp_path):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer = laser(short_answer_model, tokenizer, tmp_path, peft_config=lora, max_completion_length=8)
    forwards = count_forwards(trainer)
    scores = spy_scores(trainer)
    batch = rollout(trainer, ["Q: 1+2=", "Q: 9+8", "Q: 2", "Q:"])
    ids = (trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id)
    with_adapter, finished = plain_reward_token_logps(trainer.model, batch, *ids)
    with trainer.model.disable_adapter():
        without_adapter, _ = plain_reward_token_logps(trainer.model, batch, *ids)
    assert not torch.allclose(with_adapter[finished], without_adapter[finished], atol=1e-3)
    assert sum(forwards) < finished.sum()  # most were read during generation
    torch.testing.assert_close(scores[0][finished], with_adapter[finished], atol=1e-5, rtol=0)


def test_lora_reference_is_the_base_model_and_training_runs(short_answer_model, tokenizer, tmp_path):
    """LoRA through PEFT, beta > 0: TRL's reference forward runs with the adapter disabled; exact mode
    reads the reference score from it. A real `train()` with every TRL path on runs to the end."""
    base = copy.deepcopy(short_answer_model)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    trainer = laser(short_answer_model, tokenizer, tmp_path, peft_config=lora, beta=0.1, c_ref="exact", **OFF_STEP)
    assert trainer.ref_model is None  # no copy: the base model under the adapter is the reference
    batch = rollout(trainer)
    ids = (trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id)
    expected_reference, finished = plain_reward_token_logps(base, batch, *ids)
    expected_policy, _ = plain_reward_token_logps(trainer.model, batch, *ids)
    assert not torch.allclose(expected_policy[finished], expected_reference[finished], atol=1e-3)
    torch.testing.assert_close(
        batch["reference_reward_token_logps"][finished], expected_reference[finished], atol=1e-5, rtol=0
    )
    trainer.args.max_steps = 2
    trainer.train()
    assert trainer.state.global_step == 2
    assert any("laser/self_reward_mse" in log for log in trainer.state.log_history)
    assert [log["laser/phase"] for log in trainer.state.log_history if "laser/phase" in log] == [2.0]
