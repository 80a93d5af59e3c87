"""A learning rate of its own for z_c's row of the LM head: the score's linear read-out.

log pi(z_c | x, y, EOS) = w_zc . h - logsumexp(W h): the score reads the last hidden state h at the EOS
through z_c's row w_zc alone. z_c never occurs as an input, so that row (tied or not to the input
embeddings) changes nothing but the score; yet at the policy's learning rate it moves as slowly as every
other weight, and the body has to bend h towards it. Scaling that row's update lets the read-out turn to
where the body already encodes correctness (a logistic regression on SmolLM2's EOS states reaches a held-out
AUROC of 0.8 before any training: benchmarks/score_learning.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def scale_row_updates(optimizer: torch.optim.Optimizer, weight: torch.Tensor, row: int, scale: float) -> Callable:
    """Multiply every optimizer step's change of `weight[row]` by `scale`, whatever the optimizer computes.

    The row is copied before each step and, after it, moved `scale - 1` more times the step's own change:
    AdamW's update, weight decay included, at `scale` times the learning rate for that row alone.

    Args:
        optimizer: an optimizer over parameters that include `weight` (whole, not sharded).
        weight: (V, H) the LM head's weight.
        row: the reward token's id.
        scale: the row's learning-rate multiplier; 1 changes nothing.

    Returns:
        A function that removes the hooks.
    """
    before: list[torch.Tensor] = []

    def save_row(optimizer, args, kwargs) -> None:
        before[:] = [weight.data[row].clone()]

    def scale_change(optimizer, args, kwargs) -> None:
        change = weight.data[row] - before[0]
        weight.data[row] += (scale - 1) * change

    handles = [optimizer.register_step_pre_hook(save_row), optimizer.register_step_post_hook(scale_change)]

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return remove
