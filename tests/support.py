"""What the tests of the trainer share: a verifier stand-in, a data set, TRL arguments, and the score
computed independently of the trainer."""

import torch
from datasets import Dataset

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
    """log pi(z_c | x, y, EOS) (B,) and the (B,) finished rows, computed one row at a time and without the
    library: the row's prompt tokens, its completion up to its first EOS, then z_c, in a plain untempered
    forward (with autograd when `grad`); 0 for a row with no EOS. `pad_token_id` is unused: no padding."""
    logps, finished = [], []
    rows = zip(
        batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"], batch["completion_mask"], strict=True
    )
    for prompt, prompt_mask, completion, completion_mask in rows:
        completion = [int(t) for t, m in zip(completion, completion_mask, strict=True) if m]
        ends = [i for i, token in enumerate(completion) if token in eos_token_ids]
        finished.append(bool(ends))
        if not ends:
            logps.append(torch.zeros((), requires_grad=False))
            continue
        ids = [int(t) for t, m in zip(prompt, prompt_mask, strict=True) if m] + completion[: ends[0] + 1]
        with torch.set_grad_enabled(grad):
            logits = model(input_ids=torch.tensor([ids + [reward_token_id]])).logits[0]
        logps.append(logits[len(ids) - 1].float().log_softmax(-1)[reward_token_id])
    return torch.stack(logps), torch.tensor(finished)
