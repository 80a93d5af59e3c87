import copy
import json

import pytest
import torch
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
from transformers.utils import logging as transformers_logging
from trl import GRPOConfig, GRPOTrainer

import laser_rl.trainer as trainer_module
from laser_rl.config import LaserConfig
from laser_rl.core import class_balance_weights, reward_token_positions, self_reward_scores
from laser_rl.errors import LaserInputError
from laser_rl.testing import REWARD_TOKEN
from laser_rl.trainer import LaserGRPOTrainer


def laser_trainer(model, tokenizer, tmp_path, **overrides) -> LaserGRPOTrainer:
    return LaserGRPOTrainer(
        model=model,
        reward_funcs=even_length_reward,
        args=LaserConfig(**laser_fields(tmp_path, **{"self_reward_warmup_steps": 100, **overrides})),
        train_dataset=dataset(),
        processing_class=tokenizer,
    )


def generation_batch(trainer) -> dict:
    examples = [dict(row) for row in dataset().select(range(2))]
    torch.manual_seed(0)
    return trainer._generate_and_score_completions([ex for ex in examples for _ in range(NUM_GENERATIONS)])


def test_score_is_read_in_the_policy_forward_untempered_with_the_token_inserted(
    short_answer_model, tokenizer, tmp_path
):
    reference_model = copy.deepcopy(short_answer_model)
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, temperature=0.7)
    batch = generation_batch(trainer)
    captured = spy_scores(trainer)
    forwards = []
    hook = trainer.model.model.register_forward_hook(lambda *args: forwards.append(1))
    trainer._compute_loss(trainer.model, batch)
    hook.remove()
    assert len(forwards) == 1  # one forward gives the policy log-probs and the score

    expected, finished = plain_reward_token_logps(
        reference_model, batch, trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id
    )
    assert finished.any()
    torch.testing.assert_close(captured[0][finished], expected[finished], atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("rows", [slice(0, 3), slice(1, 3)], ids=["eos-in-last-column", "no-new-column"])
def test_fused_score_leaves_the_policy_log_probs_alone(short_answer_model, tokenizer, tmp_path, temperature, rows):
    reference_model = copy.deepcopy(short_answer_model)
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, temperature=temperature)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    digit = tokenizer.convert_tokens_to_ids("7")
    prompt = tokenizer(["Q: 3+4=", "Q: 3+4=", "Q: 3+4="], return_tensors="pt")
    batch = {
        "prompt_ids": prompt.input_ids,
        "prompt_mask": prompt.attention_mask,
        # EOS in the last column (z_c needs a new column), EOS earlier, truncated.
        "completion_ids": torch.tensor([[digit, digit, eos], [digit, eos, pad], [digit, digit, digit]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]]),
    }
    batch = {key: value[rows] for key, value in batch.items()}
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, 3, compute_entropy=True
        )
        grpo_logps, grpo_entropies, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, trainer.model, input_ids, attention_mask, 3, compute_entropy=True
        )
    torch.testing.assert_close(logps, grpo_logps, atol=1e-6, rtol=0)
    torch.testing.assert_close(entropies, grpo_entropies, atol=1e-6, rtol=0)
    expected, finished = plain_reward_token_logps(reference_model, batch, trainer.reward_token_id, [eos], pad)
    assert finished.tolist() == [True, True, False][rows]
    scores = trainer._forward_scores[-1][1]
    torch.testing.assert_close(scores[finished], expected[finished], atol=1e-5, rtol=0)
    assert scores[-1] == 0.0  # truncated


def test_solutions_the_verifier_cannot_judge_are_left_out_of_the_self_reward_loss(
    short_answer_model, tokenizer, tmp_path
):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path)
    fractional = [0.25, None, 1.0, float("nan"), 0.0, 0.5, None, 0.75]
    trainer.reward_funcs = [lambda completions, **kwargs: fractional[: len(completions)]]
    batch = generation_batch(trainer)
    _, finished = reward_token_positions(batch["completion_ids"], batch["completion_mask"], trainer.eos_token_ids)
    judged = finished & torch.tensor([reward is not None and reward == reward for reward in fractional])
    assert judged.any() and not judged.all()
    weights = batch["self_reward_weights"]
    assert (weights[~judged] == 0).all() and (weights[judged] > 0).all()
    expected = class_balance_weights(batch["verifier_rewards"], judged) / judged.sum()
    torch.testing.assert_close(weights, expected)
    rewards = torch.tensor([0.0 if reward is None else reward for reward in fractional])
    torch.testing.assert_close(batch["verifier_rewards"][judged], rewards[judged])


def test_a_tempered_score_that_cannot_be_undone_is_refused(short_answer_model, tokenizer, tmp_path):
    short_answer_model.config.final_logit_softcapping = 30.0
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        laser_trainer(short_answer_model, tokenizer, tmp_path, temperature=0.7)
    laser_trainer(short_answer_model, tokenizer, tmp_path, temperature=1.0)  # nothing to undo


def test_alpha_and_tau_zero_reproduce_grpo_loss_and_gradients(short_answer_model, tokenizer, tmp_path):
    grpo_model = copy.deepcopy(short_answer_model)
    laser = laser_trainer(
        short_answer_model,
        tokenizer,
        tmp_path,
        self_reward_loss_coef=0.0,
        self_rewarding_advantage_coef=0.0,
        self_reward_warmup_steps=0,  # every phase on, with zero weights
    )
    grpo = GRPOTrainer(
        model=grpo_model,
        reward_funcs=even_length_reward,
        args=GRPOConfig(**common_args(tmp_path)),
        train_dataset=dataset(),
        processing_class=tokenizer,
    )
    batch = generation_batch(laser)
    grpo_batch = {k: v for k, v in batch.items() if k not in ("verifier_rewards", "self_reward_weights")}

    def loss_and_grads(trainer, model, inputs):
        model.zero_grad()
        loss = trainer._compute_loss(model, inputs)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    laser_loss, laser_grads = loss_and_grads(laser, laser.model, batch)
    grpo_loss, grpo_grads = loss_and_grads(grpo, grpo.model, grpo_batch)
    torch.testing.assert_close(laser_loss, grpo_loss)
    for laser_grad, grpo_grad in zip(laser_grads, grpo_grads, strict=True):
        torch.testing.assert_close(laser_grad, grpo_grad)

    # With alpha > 0 the same batch must give another loss: the comparison above can fail.
    laser.args.self_reward_loss_coef = 0.1
    assert not torch.isclose(laser._compute_loss(laser.model, batch), grpo_loss)


def test_training_on_a_fixed_batch_lowers_the_self_reward_mse(short_answer_model, tokenizer, tmp_path):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, self_reward_loss_coef=1.0)
    batch = generation_batch(trainer)
    captured = spy_scores(trainer)
    optimizer = torch.optim.Adam(trainer.model.parameters(), lr=3e-3)

    def mse() -> float:
        scores = self_reward_scores(captured[-1], C_REF, BETA_V)
        w = batch["self_reward_weights"]
        return (w * (scores - batch["verifier_rewards"]) ** 2).sum().item() / w.sum().item()

    history = []
    for _ in range(15):
        loss = trainer._compute_loss(trainer.model, batch)
        history.append(mse())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert history[-1] < 0.5 * history[0]


def test_self_rewarding_advantages_use_the_policy_score_of_the_rollout(
    short_answer_model, tokenizer, tmp_path, monkeypatch
):
    reference_model = copy.deepcopy(short_answer_model)
    trainer = laser_trainer(
        short_answer_model,
        tokenizer,
        tmp_path,
        self_reward_warmup_steps=0,
        self_rewarding_advantage_coef=0.5,
        self_rewarding_std_threshold=0.0,
        c_ref=-12.0,  # puts this model's scores inside [0, 1], where they can spread
    )
    calls = []
    original = trainer_module.self_rewarding_advantages

    def spy(verifier_advantages, scores, *args):
        calls.append((verifier_advantages.clone(), scores.clone()))
        return original(verifier_advantages, scores, *args)

    monkeypatch.setattr(trainer_module, "self_rewarding_advantages", spy)
    batch = generation_batch(trainer)
    assert len(calls) == 1
    verifier_advantages, scores = calls[0]
    logps, finished = plain_reward_token_logps(
        reference_model, batch, trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id
    )
    expected_scores = self_reward_scores(logps, -12.0, BETA_V)
    torch.testing.assert_close(scores[finished], expected_scores[finished], atol=1e-5, rtol=0)
    expected, _ = original(verifier_advantages, scores, finished, NUM_GENERATIONS, 0.0, 0.5)
    torch.testing.assert_close(batch["advantages"], expected)
    assert not torch.allclose(batch["advantages"], verifier_advantages)


def test_exact_mode_reads_a_frozen_reference_model(short_answer_model, tokenizer, tmp_path):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, c_ref="exact")
    assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    batch = generation_batch(trainer)
    captured = spy_scores(trainer)
    trainer._compute_loss(trainer.model, batch)
    _, finished = reward_token_positions(batch["completion_ids"], batch["completion_mask"], trainer.eos_token_ids)
    # Before any update the policy is the reference: every score is exactly 0.
    torch.testing.assert_close(captured[0][finished], batch["reference_reward_token_logps"][finished])


def test_c_ref_auto_is_the_initial_policys_mean_on_the_first_batch_with_no_model_copy(
    short_answer_model, tokenizer, tmp_path
):
    initial = copy.deepcopy(short_answer_model)
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, c_ref="auto", reasoning_warmup_steps=1)
    assert trainer.ref_model is None and trainer.c_ref is None
    trainer.model.train()  # as in `train()`: c_ref is never measured on an eval batch
    batch = generation_batch(trainer)
    logps, finished = plain_reward_token_logps(
        initial, batch, trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id
    )
    assert finished.any()
    assert trainer.c_ref == pytest.approx(logps[finished].mean().item(), abs=1e-5)
    assert trainer._metrics["train"]["laser/c_ref"] == [trainer.c_ref]
    measured = trainer.c_ref
    generation_batch(trainer)  # measured once: the policy is no longer pi_ref after the first update
    assert trainer.c_ref == measured
    trainer.save_model(str(tmp_path / "saved"))
    assert json.loads((tmp_path / "saved" / "laser_config.json").read_text())["c_ref"] == measured


def test_c_ref_auto_of_a_resumed_run_is_the_one_its_checkpoint_measured(short_answer_model, tokenizer, tmp_path):
    resumed_model = copy.deepcopy(short_answer_model)
    schedule = dict(c_ref="auto", save_strategy="steps", save_steps=2)
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, max_steps=2, **schedule)
    trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert json.loads((checkpoint / "laser_config.json").read_text())["c_ref"] == trainer.c_ref
    resumed = laser_trainer(resumed_model, tokenizer, tmp_path, max_steps=3, **schedule)
    resumed.train(resume_from_checkpoint=True)  # the last checkpoint of output_dir: checkpoint-2
    assert resumed.state.global_step == 3 and resumed.c_ref == trainer.c_ref


def test_a_fitted_level_is_held_by_c_ref_which_the_checkpoint_and_a_resume_carry(
    short_answer_model, tokenizer, tmp_path
):
    resumed_model = copy.deepcopy(short_answer_model)
    schedule = dict(self_reward_level_fit=1.0, save_strategy="steps", save_steps=2)
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, max_steps=2, **schedule)
    trainer.train()
    logs = trainer.state.log_history
    both_classes = [log for log in logs if "laser/score_wrong_mean" in log and "laser/score_correct_mean" in log]
    assert both_classes
    for log in both_classes:  # fitted afresh: the two classes' mean scores straddle the targets' middle, 0.5
        assert (log["laser/score_correct_mean"] + log["laser/score_wrong_mean"]) / 2 == pytest.approx(0.5, abs=1e-5)
    assert trainer.c_ref != C_REF
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert json.loads((checkpoint / "laser_config.json").read_text())["c_ref"] == pytest.approx(trainer.c_ref)
    resumed = laser_trainer(resumed_model, tokenizer, tmp_path, max_steps=2, **schedule)
    resumed.train(resume_from_checkpoint=True)  # nothing left to train: the c_ref it resumed with stays
    assert resumed.c_ref == pytest.approx(trainer.c_ref)


def test_a_batch_of_one_class_leaves_the_fitted_level_alone(short_answer_model, tokenizer, tmp_path):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, self_reward_level_fit=0.5)
    scores, weights = torch.tensor([0.9, 0.2, 0.6, 0.1]), torch.full((4,), 0.25)
    assert trainer._fit_level(scores, torch.ones(4), weights) == 0.0 and trainer.c_ref == C_REF
    # both classes: level (-0.1 + 0.2 - 0.4 + 0.1) / 4 = -0.05, half of it absorbed by c_ref
    shift = trainer._fit_level(scores, torch.tensor([1.0, 0.0, 1.0, 0.0]), weights)
    assert shift == pytest.approx(-0.025) and trainer.c_ref == pytest.approx(C_REF - 0.025 / BETA_V)


def test_phases_follow_the_global_step_across_a_resume(short_answer_model, tokenizer, tmp_path):
    resumed_model = copy.deepcopy(short_answer_model)
    schedule = dict(reasoning_warmup_steps=1, self_reward_warmup_steps=2, max_steps=4, save_strategy="steps")
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, save_steps=2, **schedule)
    trainer.train()
    phases = [log["laser/phase"] for log in trainer.state.log_history if "laser/phase" in log]
    assert phases == [0.0, 1.0, 1.0, 2.0]
    assert any("laser/self_reward_mse" in log for log in trainer.state.log_history)

    resumed = laser_trainer(resumed_model, tokenizer, tmp_path, save_steps=2, **schedule)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    resumed_phases = [log["laser/phase"] for log in resumed.state.log_history if "laser/phase" in log]
    assert resumed_phases[-2:] == [1.0, 2.0]
    assert resumed.state.global_step == 4


def test_the_same_seed_trains_the_same_model(short_answer_model, tokenizer, tmp_path):
    """Every phase (RLVR only, + MSE, + self-rewarding advantages), twice from the same model and seed."""
    models = [copy.deepcopy(short_answer_model) for _ in range(2)]
    schedule = dict(reasoning_warmup_steps=1, self_reward_warmup_steps=1, max_steps=3, self_reward_loss_coef=1.0)
    for i, model in enumerate(models):
        laser_trainer(model, tokenizer, tmp_path / str(i), c_ref=-12.0, **schedule).train()
    trained, again = (model.state_dict() for model in models)
    assert any(not torch.equal(trained[name], weights) for name, weights in short_answer_model.state_dict().items())
    for name, weights in trained.items():
        assert torch.equal(weights, again[name]), name


def test_reward_token_must_be_one_unused_token(short_answer_model, tokenizer, tmp_path):
    with pytest.raises(LaserInputError, match="not a single token"):
        laser_trainer(short_answer_model, tokenizer, tmp_path, reward_token="<|nope|>")
    with pytest.raises(LaserInputError, match="EOS or pad"):
        laser_trainer(short_answer_model, tokenizer, tmp_path, reward_token=str(tokenizer.eos_token_id))
    with pytest.raises(ValueError, match="c_ref"):
        LaserConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, c_ref=1.0)
    with pytest.raises(ValueError, match="self_reward_level_fit must be in"):
        LaserConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, self_reward_level_fit=1.5)
    with pytest.raises(ValueError, match="c_ref 'exact' has none"):
        LaserConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, self_reward_level_fit=1.0, c_ref="exact")


def test_the_constructor_takes_grpo_trainers_arguments_in_its_order_with_its_defaults():
    import inspect

    ours = inspect.signature(LaserGRPOTrainer.__init__).parameters
    theirs = inspect.signature(GRPOTrainer.__init__).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()
    ]


# The private methods of TRL's GRPOTrainer that LaserGRPOTrainer overrides, with the parameters it relies on.
OVERRIDDEN = {
    "_get_per_token_logps_and_entropies": [  # the multimodal keywords after compute_entropy pass through **kwargs
        "self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy",
        "compute_aux_loss", "pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
        "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids",
    ],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_single_turn": [
        "self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images",
    ],
    "_generate_and_score_completions": ["self", "inputs"],
    "_compute_loss": ["self", "model", "inputs"],
    "_save": ["self", "output_dir", "state_dict"],
}  # fmt: skip


@pytest.mark.parametrize("name", list(OVERRIDDEN))
def test_trls_private_methods_that_we_override_keep_their_signature(name):
    import inspect

    assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters) == OVERRIDDEN[name], (
        f"TRL changed GRPOTrainer.{name}; LaserGRPOTrainer.{name} must follow"
    )


def test_without_reward_functions_trl_says_so(short_answer_model, tokenizer, tmp_path):
    args = LaserConfig(**common_args(tmp_path), reward_token=REWARD_TOKEN, c_ref=C_REF)
    with pytest.raises(ValueError, match="No reward source provided"):
        LaserGRPOTrainer(short_answer_model, None, args, dataset(), processing_class=tokenizer)


def test_body_grad_scale_0_keeps_the_self_reward_loss_out_of_the_body(short_answer_model, tokenizer, tmp_path):
    variants = {
        "grpo": {"self_reward_loss_coef": 0.0},
        "read-out only": {"self_reward_loss_coef": 1.0, "self_reward_body_grad_scale": 0.0},
        "half": {"self_reward_loss_coef": 1.0, "self_reward_body_grad_scale": 0.5},
        "paper": {"self_reward_loss_coef": 1.0},
    }
    gradients, head_names = {}, {}
    for name, overrides in variants.items():
        model = copy.deepcopy(short_answer_model)
        trainer = laser_trainer(model, tokenizer, tmp_path, temperature=0.7, **overrides)
        batch = generation_batch(trainer)  # seeded: the same completions for every variant
        trainer._compute_loss(trainer.model, batch).backward()
        head = model.get_output_embeddings().weight
        head_names[name] = next(n for n, p in model.named_parameters() if p is head)
        gradients[name] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    z_c, head_name = trainer.reward_token_id, head_names["grpo"]
    body = [n for n in gradients["grpo"] if n != head_name]
    for n in body:  # the body sees the policy gradient alone
        torch.testing.assert_close(gradients["read-out only"][n], gradients["grpo"][n], atol=1e-7, rtol=1e-5)
    # the MSE's part of the body's gradient scales with the setting
    moved = [n for n in body if (gradients["paper"][n] - gradients["grpo"][n]).abs().max() > 1e-6]
    assert moved
    for n in moved:
        expected = gradients["grpo"][n] + 0.5 * (gradients["paper"][n] - gradients["grpo"][n])
        torch.testing.assert_close(gradients["half"][n], expected, atol=1e-6, rtol=1e-4)
    # z_c's row, the read-out, gets all of the MSE's gradient whatever the body's share
    assert gradients["paper"][head_name][z_c].abs().max() > 1e-4
    for name in ("read-out only", "half"):
        torch.testing.assert_close(gradients[name][head_name][z_c], gradients["paper"][head_name][z_c])


def test_initial_score_moves_every_score_and_the_saved_c_ref_reads_them_back(short_answer_model, tokenizer, tmp_path):
    from laser_rl.model_settings import ModelSettings

    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, self_reward_initial_score=0.5)
    logps = torch.tensor([-5.0, -3.0, -8.0])
    torch.testing.assert_close(trainer._scores(logps, {}), BETA_V * (logps - C_REF) + 0.5)
    folder = tmp_path / "saved"
    trainer.save_model(str(folder))
    stored = ModelSettings.read(folder)
    assert stored.c_ref == pytest.approx(C_REF - 0.5 / BETA_V) and stored.self_reward_initial_score == 0.5
    # what `laser score` computes from the folder alone is the training score
    assert BETA_V * (-5.0 - stored.c_ref) == pytest.approx(trainer._scores(logps, {})[0].item())
    assert stored.reference_c_ref == pytest.approx(C_REF)
    # a run from that folder with c_ref auto starts from the same reference mean, whatever its own initial score
    again = LaserGRPOTrainer(
        model=str(folder), reward_funcs=even_length_reward, train_dataset=dataset(), processing_class=tokenizer,
        args=LaserConfig(**laser_fields(tmp_path, c_ref="auto")),
    )  # fmt: skip
    assert again.c_ref == pytest.approx(C_REF)


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_a_solution_no_verifier_could_judge_gets_advantage_0_in_every_phase(
    short_answer_model, tokenizer, tmp_path, tau
):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, self_reward_warmup_steps=0,
                            self_rewarding_advantage_coef=tau, self_rewarding_std_threshold=0.0)  # fmt: skip
    rewards = [1.0, None, 0.0, 1.0, float("nan"), 0.0, 1.0, None]
    trainer.reward_funcs = [lambda completions, **kwargs: rewards[: len(completions)]]
    trainer._scores = lambda logps, batch: torch.linspace(0.1, 0.9, len(logps))  # spread: every group mixes
    batch = generation_batch(trainer)
    unjudged = torch.tensor([reward is None or reward != reward for reward in rewards])
    assert (batch["advantages"][unjudged] == 0).all()
    assert (batch["advantages"][~unjudged] != 0).any()
    mode = "train" if trainer.model.training else "eval"
    assert trainer._metrics[mode]["laser/mixed_groups"] == ([1.0] if tau else [])


def test_rollouts_never_sample_the_reward_token(short_answer_model, tokenizer, tmp_path):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path)
    reward_token_id = trainer.reward_token_id

    def favour_reward_token(module, args, output):  # z_c would be sampled at almost every step
        output.logits[..., reward_token_id] += 50.0
        return output

    short_answer_model.register_forward_hook(favour_reward_token)
    assert (generation_batch(trainer)["completion_ids"] != reward_token_id).all()
    trainer.generation_config.suppress_tokens = None  # the control: without the suppression it is sampled
    trainer.generation_kwargs.pop("suppress_tokens")
    assert (generation_batch(trainer)["completion_ids"] == reward_token_id).any()


def test_self_verification_metrics_are_those_of_the_whole_generation_batch(short_answer_model, tokenizer, tmp_path):
    trainer = laser_trainer(
        short_answer_model, tokenizer, tmp_path, per_device_train_batch_size=4, steps_per_generation=2
    )
    eos = trainer.eos_token_ids[0]
    verifier_rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    micro_batch = {
        "completion_ids": torch.tensor([[5, eos]] * 4),
        "completion_mask": torch.ones(4, 2, dtype=torch.long),
        "verifier_rewards": verifier_rewards,
        "self_reward_weights": torch.full((4,), 1 / 8),
    }
    # AUROC 1 on the first micro-batch, 0 on the second: 0.5 averaged, 12 of 16 pairs right over both
    for scores in ([0.9, 0.1, 0.8, 0.2], [0.3, 0.7, 0.4, 0.6]):
        trainer._log_self_verification("train", torch.tensor(scores), micro_batch)
    assert trainer._metrics["train"]["laser/auroc"] == [pytest.approx(0.75)]
    squared_errors = torch.tensor([0.01, 0.01, 0.04, 0.04, 0.49, 0.49, 0.36, 0.36])
    assert trainer._metrics["train"]["laser/self_reward_mse"] == [pytest.approx(squared_errors.mean().item())]


def test_c_ref_auto_says_once_that_it_waits_and_at_which_step_it_was_measured(
    short_answer_model, tokenizer, tmp_path, caplog
):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, c_ref="auto")
    eos = trainer.eos_token_ids[0]

    def never_end(module, args, output):
        output.logits[..., eos] = -float("inf")
        return output

    hook = short_answer_model.register_forward_hook(never_end)
    trainer.model.train()
    transformers_logging.enable_propagation()
    with caplog.at_level("WARNING", logger="laser_rl.trainer"):
        generation_batch(trainer)
        generation_batch(trainer)
        assert trainer.c_ref is None
        hook.remove()
        trainer.model.eval()  # an eval batch never measures c_ref
        generation_batch(trainer)
        assert trainer.c_ref is None
        trainer.model.train()
        trainer.state.global_step = 3
        generation_batch(trainer)
    transformers_logging.disable_propagation()
    assert trainer.c_ref is not None
    messages = [record.getMessage() for record in caplog.records]
    assert sum("waits for a finished solution" in m for m in messages) == 1
    assert any("measured at step 3" in m for m in messages)


def test_a_model_trained_from_python_carries_its_prompt_settings(short_answer_model, tokenizer, tmp_path):
    from laser_rl.model_settings import ModelSettings

    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, prompt_template="Q: {problem}=", chat=False)
    trainer.save_model(str(tmp_path / "first"))
    first = ModelSettings.read(tmp_path / "first")
    assert (first.prompt_template, first.chat, first.reward_token) == ("Q: {problem}=", False, REWARD_TOKEN)
    # a second run from that folder, given no prompt settings, keeps them; its z_c given by id matches by id
    again = LaserGRPOTrainer(
        model=str(tmp_path / "first"), reward_funcs=even_length_reward, train_dataset=dataset(),
        processing_class=tokenizer,
        args=LaserConfig(**laser_fields(tmp_path, c_ref="auto", reward_token=str(trainer.reward_token_id))),
    )  # fmt: skip
    assert again.c_ref == pytest.approx(C_REF)
    again.save_model(str(tmp_path / "second"))
    second = ModelSettings.read(tmp_path / "second")
    assert (second.prompt_template, second.chat, second.c_ref) == ("Q: {problem}=", False, pytest.approx(C_REF))


def test_rollout_scores_pair_with_their_completions_and_a_miss_is_said_and_counted(
    short_answer_model, tokenizer, tmp_path, caplog, monkeypatch
):
    initial = copy.deepcopy(short_answer_model)
    trainer = laser_trainer(
        short_answer_model, tokenizer, tmp_path, self_reward_warmup_steps=0, max_completion_length=8
    )
    trainer.model.train()
    captured = spy_scores(trainer)
    original_generate = trainer._generate_single_turn

    def reordered(*args, **kwargs):  # the scores read during generation come back in another row order
        result = original_generate(*args, **kwargs)
        sampled, recorded = trainer._generation_scores
        trainer._generation_scores = (sampled[::-1], recorded.flip(0))
        return result

    transformers_logging.enable_propagation()
    with caplog.at_level("WARNING", logger="laser_rl.trainer"):
        paired = generation_batch(trainer)
        monkeypatch.setattr(trainer, "_generate_single_turn", reordered)
        unpaired = generation_batch(trainer)
        generation_batch(trainer)
    transformers_logging.disable_propagation()
    assert trainer._metrics["train"]["laser/extra_forwards"] == [0.0, 1.0, 1.0]
    warnings = [r.getMessage() for r in caplog.records if "could not pair" in r.getMessage()]
    assert len(warnings) == 1 and "scored during generation" in warnings[0]
    for logps, batch in zip(captured[:2], (paired, unpaired), strict=True):  # the right score in each row
        expected, finished = plain_reward_token_logps(
            initial, batch, trainer.reward_token_id, trainer.eos_token_ids, tokenizer.pad_token_id
        )
        assert finished.any() and not finished.all()
        torch.testing.assert_close(logps[finished], expected[finished], atol=1e-5, rtol=0)


def test_an_old_policy_forward_trl_copied_is_recomputed_and_counted(
    short_answer_model, tokenizer, tmp_path, monkeypatch
):
    trainer = laser_trainer(short_answer_model, tokenizer, tmp_path, self_reward_warmup_steps=0, num_iterations=2)
    trainer.model.train()
    original = GRPOTrainer._generate_and_score_completions

    def copying(self, inputs):  # as if TRL cast or moved the tensor it keeps
        output = original(self, inputs)
        output["old_per_token_logps"] = output["old_per_token_logps"].clone()
        return output

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", copying)
    generation_batch(trainer)
    assert trainer._metrics["train"]["laser/extra_forwards"] == [1.0]
    assert "old_per_token_logps" in " ".join(trainer._missed)
