"""What the tests of the trainer share: a verifier stand-in, a data set, TRL arguments, and the score
computed independently of the trainer."""

import torch
from datasets import Dataset

from laser_rl.core import place_reward_token, reward_token_positions
from laser_rl.testing import REWARD_TOKEN

C_REF, BETA_V = -5.0, 0.1
NUM_GENERATIONS = 4


def even_length_reward(completions, **kwargs):
    """A verifier stand-in that splits completions into both classes deterministically."""
    return [float(len(c) % 2 == 0) for c in completions]


def dataset() -> Dataset:
    pairs = [(a, b) for a in range(4) for b in range(4)]
    return Dataset.from_dict({"prompt": [f"Q: {a}+{b}=" for a, b in pairs], "answer": [str(a + b) for a, b in pairs]})


def common_args(tmp_path) -> dict:
    return dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=8,
        num_generations=NUM_GENERATIONS,
        max_completion_length=3,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        seed=0,
    )


def laser_fields(tmp_path, **overrides) -> dict:
    """`LaserConfig` fields: `common_args`, the test models' z_c, a fixed c_ref, no reasoning warm-up."""
    fields = dict(reward_token=REWARD_TOKEN, c_ref=C_REF, self_reward_beta=BETA_V, reasoning_warmup_steps=0)
    return {**common_args(tmp_path), **fields, **overrides}


def spy_scores(trainer) -> list:
    """The log pi(z_c) (B,) that each call of `trainer._scores` receives, from now on."""
    captured = []
    original = trainer._scores

    def spy(logps, batch):
        captured.append(logps.detach().clone())
        return original(logps, batch)

    trainer._scores = spy
    return captured


def plain_reward_token_logps(model, batch, reward_token_id, eos_token_ids, pad_token_id, grad=False):
    """log pi(z_c | x, y, EOS) (B,) with z_c really written after the EOS, from a plain untempered forward
    (with autograd when `grad`), and the (B,) finished rows."""
    completion_ids, completion_mask, finished = place_reward_token(
        batch["completion_ids"], batch["completion_mask"], reward_token_id, eos_token_ids, pad_token_id
    )
    input_ids = torch.cat([batch["prompt_ids"], completion_ids], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], completion_mask], dim=1)
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    eos_index, _ = reward_token_positions(batch["completion_ids"], batch["completion_mask"], eos_token_ids)
    slot = batch["prompt_ids"].size(1) + eos_index + 1  # where z_c sits
    logps = logits.log_softmax(-1)[torch.arange(len(slot)), slot - 1]  # predicted one position earlier
    assert (input_ids[torch.arange(len(slot)), slot][finished] == reward_token_id).all()
    return logps.gather(1, input_ids[torch.arange(len(slot)), slot].unsqueeze(1)).squeeze(1), finished
