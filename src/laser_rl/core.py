"""The LaSeR algorithm as small pure functions (framework-free, pure torch).

Notation, as in the paper (arXiv 2510.14943) and ../shared/docs/laser.md:
- z_c: the reward token, a pre-chosen token that the model never otherwise emits;
- r_s = beta_v * (log pi(z_c | x, y, EOS) - c_ref): the self-reward score, read from the
  untempered next-token distribution at the solution's EOS position;
- r_v in [0, 1]: the verifier reward;
- B: completions in a batch, L: completion length, G: groups (prompts), K: completions per group.
"""

from __future__ import annotations

from enum import IntEnum

import torch
import torch.nn.functional as F

# Same epsilon as TRL's GRPO advantages, so A_s and A_v are normalised alike.
ADVANTAGE_EPS = 1e-4


def reward_token_positions(
    completion_ids: torch.Tensor, completion_mask: torch.Tensor, eos_token_ids: list[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each completion ends, and whether it ends with an EOS.

    The completion mask, not the token ids, says where a completion stops, so this is right
    whether the pad token equals the EOS token (Qwen) or not.

    Args:
        completion_ids: (B, L) token ids, right-padded.
        completion_mask: (B, L) 1 on the completion's tokens (EOS included), 0 on padding.
        eos_token_ids: the ids that end a solution.

    Returns:
        eos_index: (B,) long, index of each completion's last token; z_c goes at eos_index + 1,
            and its log-prob is read from the distribution predicted at eos_index.
        finished: (B,) bool, True where that last token is an EOS. Truncated completions have
            no last token to score.
    """
    lengths = completion_mask.long().sum(dim=1)
    eos_index = (lengths - 1).clamp(min=0)
    last_token = completion_ids.gather(1, eos_index.unsqueeze(1)).squeeze(1)
    eos = torch.as_tensor(eos_token_ids, device=completion_ids.device)
    finished = (lengths > 0) & torch.isin(last_token, eos)
    return eos_index, finished


def place_reward_token(
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    reward_token_id: int,
    eos_token_ids: list[int] | torch.Tensor,
    pad_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Write z_c right after the EOS of every finished completion (vectorised, no loop over rows).

    Causal attention means the inserted token changes no earlier log-prob, so a single forward
    over the result gives the policy log-probs and log pi(z_c | x, y, EOS) together.

    Args:
        completion_ids: (B, L) right-padded token ids.
        completion_mask: (B, L) 1 on the completion's tokens.
        reward_token_id: id of z_c.
        eos_token_ids: ids that end a solution.
        pad_token_id: id written in the new last column where nothing is placed.

    Returns:
        ids: (B, L + 1) with z_c at eos_index + 1 of finished rows.
        mask: (B, L + 1) the completion mask, extended by 1 where z_c was placed.
        finished: (B,) bool, rows that received z_c (truncated rows are left as they were).
    """
    eos_index, finished = reward_token_positions(completion_ids, completion_mask, eos_token_ids)
    ids = F.pad(completion_ids, (0, 1), value=pad_token_id)
    mask = F.pad(completion_mask, (0, 1), value=0)
    slot = (eos_index + 1).unsqueeze(1)
    ids = ids.scatter(1, slot, torch.where(finished, reward_token_id, ids.gather(1, slot).squeeze(1)).unsqueeze(1))
    mask = mask.scatter(1, slot, (mask.gather(1, slot).squeeze(1) | finished.to(mask.dtype)).unsqueeze(1))
    return ids, mask, finished


def reward_token_logps(logits: torch.Tensor, reward_token_id: int) -> torch.Tensor:
    """log pi(z_c | x, y, EOS) from the untempered logits predicted at the EOS position.

    Args:
        logits: (B, V) raw next-token logits at each completion's EOS; never divided by a
            sampling temperature.
        reward_token_id: id of z_c.

    Returns:
        (B,) float32 log-probabilities.
    """
    return logits.float().log_softmax(dim=-1)[:, reward_token_id]


def self_reward_scores(
    reward_token_logps: torch.Tensor, reference_logps: float | torch.Tensor, beta_v: float
) -> torch.Tensor:
    """r_s = beta_v * (log pi_theta(z_c | x, y) - log pi_ref(z_c | x, y)).

    Args:
        reward_token_logps: (B,) log pi_theta(z_c | x, y, EOS).
        reference_logps: the constant c_ref, or (B,) log pi_ref(z_c | x, y, EOS) (exact mode).
        beta_v: the KL coefficient of the verification objective.

    Returns:
        (B,) scores; about 1 means "judged correct", about 0 "judged wrong".
    """
    return beta_v * (reward_token_logps - reference_logps)


def class_balance_weights(verifier_rewards: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """Class-level re-weighting of the MSE: N / (2 N_correct) and N / (2 N_wrong).

    N counts finished completions of the whole generation batch. A reward r in [0, 1] belongs
    to the correct class with weight r and to the wrong class with weight 1 - r, which is the
    paper's hard split for r in {0, 1}. An absent class weighs 0; truncated completions weigh 0.

    Args:
        verifier_rewards: (N,) r_v in [0, 1].
        finished: (N,) bool, completions that end with an EOS.

    Returns:
        (N,) weights w_i.
    """
    keep = finished.to(verifier_rewards.dtype)
    correct = verifier_rewards.clamp(0, 1) * keep
    wrong = (1 - verifier_rewards.clamp(0, 1)) * keep
    n, n_correct, n_wrong = keep.sum(), correct.sum(), wrong.sum()
    w_correct = torch.where(n_correct > 0, n / (2 * n_correct.clamp(min=1e-12)), 0.0)
    w_wrong = torch.where(n_wrong > 0, n / (2 * n_wrong.clamp(min=1e-12)), 0.0)
    return correct * w_correct + wrong * w_wrong


def score_level(scores: torch.Tensor, verifier_rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The scores' level error s_bar - r_bar: the w-weighted mean of r_s - r_v, the error every score shares.

    With class-balanced weights it is the mean of the two classes' mean errors, so a constant score of 0.5
    has level 0 whatever the batch's accuracy. 0 where every weight is 0.

    Args:
        scores: (B,) r_s.
        verifier_rewards: (B,) r_v.
        weights: (B,) w_i, 0 for truncated completions (see `class_balance_weights`).

    Returns:
        () the weighted mean error.
    """
    weights = weights.to(scores.dtype)
    errors = scores - verifier_rewards.to(scores.dtype)
    return (weights * errors).sum() / weights.sum().clamp(min=1e-12)


def self_reward_mse(
    scores: torch.Tensor,
    verifier_rewards: torch.Tensor,
    weights: torch.Tensor,
    num_finished: int | torch.Tensor,
    level_weight: float = 1.0,
) -> torch.Tensor:
    """The LaSeR auxiliary loss sum_i w_i (r_s_i - r_v_i)^2 / N, its level part weighted by `level_weight`.

    Works on a whole generation batch (num_finished = its finished count) and on one shard of
    it (num_finished = the count over the whole batch, so that the shards add up to the total).

    The weighted squared error splits exactly into the difference and the level: with w-weighted means
    s_bar, r_bar over the batch (or shard), sum_i w_i (s_i - r_i)^2 = sum_i w_i ((s_i - s_bar) - (r_i -
    r_bar))^2 + W (s_bar - r_bar)^2, W = sum_i w_i. The level part moves every score together; on a small
    model its gradient drowns the difference's (docs/real-model.md), and `level_weight` < 1 turns it down.

    Args:
        scores: (B,) r_s.
        verifier_rewards: (B,) r_v.
        weights: (B,) w_i, 0 for truncated completions (see `class_balance_weights`).
        num_finished: N, finished completions in the whole generation batch.
        level_weight: weight of the level part; 1 is the paper's MSE.

    Returns:
        () the weighted mean squared error.
    """
    weights = weights.to(scores.dtype)
    errors = scores - verifier_rewards.to(scores.dtype)
    total = weights.sum()
    if level_weight == 1.0 or total <= 0:
        return (weights * errors**2).sum() / max(float(num_finished), 1.0)
    level = score_level(scores, verifier_rewards, weights)
    difference = (weights * (errors - level) ** 2).sum()
    return (difference + level_weight * total * level**2) / max(float(num_finished), 1.0)


def self_rewarding_advantages(
    verifier_advantages: torch.Tensor,
    scores: torch.Tensor,
    finished: torch.Tensor,
    num_generations: int,
    std_threshold: float,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix GRPO advantages with advantages computed from the self-reward scores.

    Per group of K: s = clip(r_s, 0, 1) (0 for truncated completions); where std(s) > T,
    A_s = (s - mean(s)) / std(s), else A_s = A_v; A = (1 - tau) A_v + tau A_s.

    Args:
        verifier_advantages: (G * K,) A_v, grouped consecutively as GRPO lays them out.
        scores: (G * K,) r_s of the same completions.
        finished: (G * K,) bool.
        num_generations: K.
        std_threshold: T.
        tau: weight of the self-reward advantages.

    Returns:
        advantages: (G * K,) the mixed advantages.
        mixed: (G,) bool, groups where the self-reward advantages were used (std(s) > T).
    """
    s = (scores.clamp(0, 1) * finished.to(scores.dtype)).view(-1, num_generations)
    mean = s.mean(dim=1, keepdim=True)
    std = s.std(dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(mean)
    mixed = std.squeeze(1) > std_threshold
    a_v = verifier_advantages.view(-1, num_generations).to(s.dtype)
    a_s = torch.where(mixed.unsqueeze(1), (s - mean) / (std + ADVANTAGE_EPS), a_v)
    advantages = (1 - tau) * a_v + tau * a_s
    return advantages.view(-1).to(verifier_advantages.dtype), mixed


class LaserPhase(IntEnum):
    """The training phases, in order."""

    REASONING_WARMUP = 0  # RLVR only
    SELF_REWARD = 1  # RLVR + self-reward MSE
    SELF_REWARDING_ADVANTAGES = 2  # RLVR + MSE + advantage mixing


def laser_phase(step: int, reasoning_warmup_steps: int, self_reward_warmup_steps: int) -> LaserPhase:
    """The phase of optimizer step `step` (0-based, i.e. the number of steps already taken).

    The first `reasoning_warmup_steps` steps are RLVR only; the next `self_reward_warmup_steps`
    add the MSE loss; from then on the advantages are mixed too.
    """
    if step < reasoning_warmup_steps:
        return LaserPhase.REASONING_WARMUP
    if step < reasoning_warmup_steps + self_reward_warmup_steps:
        return LaserPhase.SELF_REWARD
    return LaserPhase.SELF_REWARDING_ADVANTAGES
