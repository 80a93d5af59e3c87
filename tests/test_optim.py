"""z_c's row of the LM head at its own learning rate."""

import copy

import pytest
import torch
from support import dataset, even_length_reward, laser_fields

from laser_rl.config import LaserConfig
from laser_rl.optim import scale_row_updates
from laser_rl.trainer import LaserGRPOTrainer


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.AdamW])
def test_the_rows_step_is_scaled_and_nothing_else_moves_differently(optimizer_class):
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(2)]
    optimizers = [optimizer_class([weight], lr=0.1) for weight in weights]
    start = weights[0].detach().clone()
    weights[1].data.copy_(start)
    remove = scale_row_updates(optimizers[1], weights[1], row=2, scale=7.0)

    def step(weight, optimizer):
        optimizer.zero_grad()
        (weight[2] @ torch.ones(3) + weight.pow(2).sum()).backward()  # row 2 and every other row get gradients
        optimizer.step()

    for weight, optimizer in zip(weights, optimizers, strict=True):
        step(weight, optimizer)
    plain, scaled = weights[0].detach(), weights[1].detach()
    torch.testing.assert_close(scaled[2] - start[2], 7.0 * (plain[2] - start[2]))
    torch.testing.assert_close(torch.cat([scaled[:2], scaled[3:]]), torch.cat([plain[:2], plain[3:]]))
    remove()  # from now on the row takes the optimizer's own step
    row = scaled[2].clone()
    weights[0].data[2] = row
    for weight, optimizer in zip(weights, optimizers, strict=True):
        step(weight, optimizer)
    torch.testing.assert_close(weights[1].detach()[2], weights[0].detach()[2])


def test_the_trainer_moves_z_cs_row_scale_times_faster(short_answer_model, tokenizer, tmp_path):
    changes = {}
    for scale in (1.0, 10.0):
        model = copy.deepcopy(short_answer_model)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        args = LaserConfig(**laser_fields(tmp_path, max_steps=1, reward_token_lr_scale=scale))
        trainer = LaserGRPOTrainer(model=model, reward_funcs=even_length_reward, args=args,
                                   train_dataset=dataset(), processing_class=tokenizer)  # fmt: skip
        trainer.train()
        head = model.get_output_embeddings().weight
        name = next(name for name, p in model.named_parameters() if p is head)
        changes[scale] = (head.detach() - before[name], trainer.reward_token_id)
    (plain, token), (scaled, _) = changes[1.0], changes[10.0]
    assert plain[token].abs().max() > 0
    torch.testing.assert_close(scaled[token], 10.0 * plain[token])
    others = torch.ones(len(plain), dtype=torch.bool)
    others[token] = False
    torch.testing.assert_close(scaled[others], plain[others])


def test_a_frozen_lm_head_cannot_take_a_row_learning_rate(short_answer_model, tokenizer, tmp_path):
    from peft import LoraConfig

    args = LaserConfig(**laser_fields(tmp_path, max_steps=1, reward_token_lr_scale=10.0))
    trainer = LaserGRPOTrainer(model=short_answer_model, reward_funcs=even_length_reward, args=args,
                               train_dataset=dataset(), processing_class=tokenizer,
                               peft_config=LoraConfig(target_modules=["q_proj"]))  # fmt: skip
    with pytest.raises(ValueError, match="reward_token_lr_scale needs the LM head trained"):
        trainer.train()
