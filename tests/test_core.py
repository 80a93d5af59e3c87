import math

import pytest
import torch

from laser_rl.core import (
    LaserPhase,
    class_balance_weights,
    laser_phase,
    place_reward_token,
    reward_token_logps,
    reward_token_positions,
    score_level,
    self_reward_mse,
    self_reward_scores,
    self_rewarding_advantages,
)
from laser_rl.metrics import auroc, self_verification_metrics

EOS, PAD, ZC = 2, 0, 9


def test_positions_with_pad_distinct_from_eos():
    ids = torch.tensor([[5, 6, EOS, PAD], [5, 6, 7, 8], [5, EOS, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    eos_index, finished = reward_token_positions(ids, mask, [EOS])
    assert eos_index.tolist() == [2, 3, 1]
    assert finished.tolist() == [True, False, True]


def test_positions_when_pad_equals_eos():
    # Qwen pads with its EOS id: only the mask says where a completion ends.
    ids = torch.tensor([[5, EOS, EOS, EOS], [5, 6, 7, 8], [EOS, EOS, EOS, EOS]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    eos_index, finished = reward_token_positions(ids, mask, [EOS])
    assert eos_index.tolist() == [1, 3, 0]
    assert finished.tolist() == [True, False, True]


def test_positions_several_eos_ids_and_empty_completion():
    ids = torch.tensor([[5, 3, PAD], [PAD, PAD, PAD]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    _, finished = reward_token_positions(ids, mask, [EOS, 3])
    assert finished.tolist() == [True, False]


def test_place_reward_token_after_eos_only_for_finished_rows():
    ids = torch.tensor([[5, EOS, PAD], [5, 6, 7], [5, 6, EOS]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1]])
    placed, placed_mask, finished = place_reward_token(ids, mask, ZC, [EOS], PAD)
    assert placed.tolist() == [[5, EOS, ZC, PAD], [5, 6, 7, PAD], [5, 6, EOS, ZC]]
    assert placed_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert finished.tolist() == [True, False, True]


def test_reward_token_logps_is_an_untempered_log_softmax():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])
    assert torch.allclose(reward_token_logps(logits, 1), torch.tensor([math.log(0.75), math.log(0.5)]))


def test_scores_against_constant_and_reference():
    logps = torch.tensor([-13.0, -23.0])
    assert torch.allclose(self_reward_scores(logps, -23.0, 0.1), torch.tensor([1.0, 0.0]))
    assert torch.allclose(self_reward_scores(logps, torch.tensor([-20.0, -25.0]), 0.5), torch.tensor([3.5, 1.0]))


def test_class_balance_weights_by_hand():
    # N = 4 finished: 1 correct -> 4 / 2 = 2, 3 wrong -> 4 / 6; the truncated one weighs 0.
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])
    finished = torch.tensor([True, True, True, True, False])
    weights = class_balance_weights(rewards, finished)
    assert torch.allclose(weights, torch.tensor([2.0, 2 / 3, 2 / 3, 2 / 3, 0.0]))
    assert weights.sum().item() == pytest.approx(4.0)  # the weights keep the batch's total mass


def test_class_balance_absent_class_weighs_zero():
    weights = class_balance_weights(torch.zeros(3), torch.ones(3, dtype=torch.bool))
    assert torch.allclose(weights, torch.full((3,), 0.5))  # only the wrong class: N / (2 N) each


def test_class_balance_fractional_rewards():
    # r = 0.5 splits its mass: N_correct = 1.5, N_wrong = 0.5 over N = 2.
    weights = class_balance_weights(torch.tensor([1.0, 0.5]), torch.tensor([True, True]))
    w_correct, w_wrong = 2 / 3, 2.0
    assert torch.allclose(weights, torch.tensor([w_correct, 0.5 * w_correct + 0.5 * w_wrong]))


def test_mse_by_hand_and_shards_add_up():
    scores = torch.tensor([0.8, 0.3, 0.0, 0.5])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    weights = torch.tensor([1.0, 1.0, 0.0, 2.0])
    expected = (0.04 + 0.09 + 2 * 0.25) / 3
    assert self_reward_mse(scores, rewards, weights, 3).item() == pytest.approx(expected)
    halves = self_reward_mse(scores[:2], rewards[:2], weights[:2], 3) + self_reward_mse(
        scores[2:], rewards[2:], weights[2:], 3
    )
    assert halves.item() == pytest.approx(expected)


def test_mse_level_weight_splits_the_error_into_difference_and_level():
    scores = torch.tensor([0.8, 0.3, 0.0, 0.5])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    weights = torch.tensor([1.0, 1.0, 0.0, 2.0])
    paper = self_reward_mse(scores, rewards, weights, 3)
    # by hand: errors -0.2, 0.3, (0), -0.5; weighted mean error (-0.2 + 0.3 - 1.0) / 4 = -0.225
    difference = (0.025**2 + 0.525**2 + 2 * 0.275**2) / 3
    level = 4 * 0.225**2 / 3
    assert self_reward_mse(scores, rewards, weights, 3, level_weight=1.0).item() == pytest.approx(paper.item())
    assert self_reward_mse(scores, rewards, weights, 3, level_weight=0.0).item() == pytest.approx(difference)
    assert self_reward_mse(scores, rewards, weights, 3, level_weight=0.1).item() == pytest.approx(
        difference + 0.1 * level
    )
    assert difference + level == pytest.approx(paper.item())
    # without the level, moving every score together changes nothing
    shifted = self_reward_mse(scores + 0.4, rewards, weights, 3, level_weight=0.0)
    assert shifted.item() == pytest.approx(difference)
    assert self_reward_mse(scores, rewards, torch.zeros(4), 3, level_weight=0.0).item() == 0.0


def test_score_level_is_the_weighted_mean_error_and_0_5_for_both_classes_is_level_0():
    scores = torch.tensor([0.8, 0.3, 0.0, 0.5])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert score_level(scores, rewards, torch.tensor([1.0, 1.0, 0.0, 2.0])).item() == pytest.approx(-0.225)
    # class-balanced weights: a constant 0.5 is level 0 whatever the share of right solutions
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0])
    weights = class_balance_weights(rewards, torch.ones(4, dtype=torch.bool))
    assert score_level(torch.full((4,), 0.5), rewards, weights).item() == pytest.approx(0.0)
    assert score_level(torch.full((4,), 0.7), rewards, weights).item() == pytest.approx(0.2)
    assert score_level(scores, rewards, torch.zeros(4)).item() == 0.0


def test_self_rewarding_advantages_by_hand():
    # Group 1: scores spread (std > T) -> mixed; group 2: all ~0 -> keeps A_v.
    a_v = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.5, -0.5, 0.5, -0.5])
    scores = torch.tensor([1.4, 0.0, -0.3, 0.6, 0.01, 0.0, 0.02, 0.0])
    finished = torch.tensor([True, True, True, False, True, True, True, True])
    advantages, mixed = self_rewarding_advantages(a_v, scores, finished, 4, std_threshold=0.1, tau=0.1)
    assert mixed.tolist() == [True, False]
    s = torch.tensor([1.0, 0.0, 0.0, 0.0])  # clipped, truncated -> 0
    a_s = (s - 0.25) / (s.std() + 1e-4)
    assert torch.allclose(advantages[:4], 0.9 * a_v[:4] + 0.1 * a_s, atol=1e-6)
    assert torch.allclose(advantages[4:], a_v[4:])


def test_phase_schedule():
    phases = [laser_phase(step, 2, 3) for step in range(7)]
    assert (
        phases
        == [LaserPhase.REASONING_WARMUP] * 2
        + [LaserPhase.SELF_REWARD] * 3
        + [LaserPhase.SELF_REWARDING_ADVANTAGES] * 2
    )
    assert laser_phase(0, 0, 0) == LaserPhase.SELF_REWARDING_ADVANTAGES


def test_auroc_by_hand_with_ties():
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1])
    labels = torch.tensor([True, True, False, False])
    # pairs (pos, neg): (0.9,0.5)=1, (0.9,0.1)=1, (0.5,0.5)=0.5, (0.5,0.1)=1 -> 3.5 / 4
    assert auroc(scores, labels) == pytest.approx(0.875)
    assert math.isnan(auroc(scores, torch.ones(4, dtype=torch.bool)))


def test_self_verification_metrics_by_hand():
    scores = torch.tensor([0.9, 0.4, 0.6, 0.2, 0.1])
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
    metrics = self_verification_metrics(scores, rewards)
    assert metrics["acc_correct"] == pytest.approx(0.5)
    assert metrics["acc_wrong"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert metrics["auroc"] == pytest.approx(5 / 6)
