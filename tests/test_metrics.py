import math

import pytest
import torch

from laser_rl.metrics import (
    auroc,
    bootstrap_interval,
    expected_calibration_error,
    pass_at_k,
    self_verification_metrics,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (4, 2, 1, 0.5),  # pass@1 = c/n
        (4, 0, 3, 0.0),
        (4, 3, 2, 1.0),  # only one wrong sample: every pair holds a correct one
        (4, 4, 4, 1.0),
    ],
)
def test_pass_at_k_small_cases(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_where_binomials_are_huge() -> None:
    # The product form matches the exact ratio where the binomials are ~1e58.
    assert pass_at_k(200, 100, 100) == pytest.approx(1 - 1 / math.comb(200, 100))
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(n, c, k)


def test_expected_calibration_error_by_hand() -> None:
    # Clipped to 0.05, 0.15, 0.15, 0.95, 1.0, 0.0: bins 0 {0.05 F, 0.0 F}, 1 {0.15 T, 0.15 F}, 9 {0.95 T, 1.0 T}.
    scores = torch.tensor([0.05, 0.15, 0.15, 0.95, 1.2, -0.3])
    labels = torch.tensor([False, True, False, True, True, False])
    ece, reliability = expected_calibration_error(scores, labels)
    # gaps 0.025, 0.35, 0.025, two solutions each
    assert ece == pytest.approx((2 * 0.025 + 2 * 0.35 + 2 * 0.025) / 6)
    assert reliability["count"] == [2, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert reliability["confidence"][0] == pytest.approx(0.025)
    assert reliability["confidence"][9] == pytest.approx(0.975)
    assert reliability["accuracy"][1] == pytest.approx(0.5)
    assert reliability["accuracy"][9] == pytest.approx(1.0)
    assert math.isnan(reliability["accuracy"][5]) and math.isnan(reliability["confidence"][5])
    assert reliability["bin_edges"][3] == pytest.approx(0.3) and len(reliability["bin_edges"]) == 11


def test_expected_calibration_error_bins_and_edge_cases() -> None:
    ece, _ = expected_calibration_error(torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([True, True, False, False]))
    assert ece == 0.0
    # Two bins: 0.5 opens the upper one, 1.0 stays in it.
    ece, reliability = expected_calibration_error(torch.tensor([0.5, 1.0]), torch.tensor([False, True]), num_bins=2)
    assert reliability["count"] == [0, 2]
    assert ece == pytest.approx(abs(0.5 - 0.75))
    assert math.isnan(expected_calibration_error(torch.tensor([]), torch.tensor([], dtype=torch.bool))[0])


def test_auroc_and_self_verification_by_hand() -> None:
    scores = torch.tensor([0.9, 0.2, 0.6, 0.2])
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # positives 0.9, 0.2 against negatives 0.6, 0.2: wins 1 + 1 + 0 + 0.5 (tie) over 4 pairs
    assert auroc(scores, rewards > 0.5) == pytest.approx(2.5 / 4)
    metrics = self_verification_metrics(scores, rewards)
    assert metrics["acc_correct"] == pytest.approx(0.5)
    assert metrics["acc_wrong"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(0.5)
    assert math.isnan(self_verification_metrics(scores, torch.ones(4))["f1"])


def test_self_verification_with_fractional_rewards_counts_correct_above_one_half() -> None:
    scores = torch.tensor([0.9, 0.2, 0.6, 0.2])
    soft = torch.tensor([0.8, 0.51, 0.5, 0.1])  # the same classes as 1, 1, 0, 0: 0.5 itself is wrong
    assert self_verification_metrics(scores, soft) == self_verification_metrics(scores, torch.tensor([1.0, 1, 0, 0]))


def test_bootstrap_interval_resamples_whole_problems():
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(800, generator=generator) < 0.5
    scores = labels.float() + 1.5 * torch.randn(800, generator=generator)
    groups = torch.arange(800) // 8  # 100 problems of 8 solutions
    low, high = bootstrap_interval(auroc, scores, labels, groups)
    assert low < auroc(scores, labels) < high and 0.05 < high - low < 0.2
    few_low, few_high = bootstrap_interval(auroc, scores[:80], labels[:80], groups[:80])
    assert few_high - few_low > 2 * (high - low)  # 10 problems: about sqrt(10) times wider
    assert bootstrap_interval(auroc, labels.float(), labels, groups) == (1.0, 1.0)
    # a group that only ever holds one class: resamples where the other is absent are left out, not NaN
    assert (
        bootstrap_interval(auroc, scores[:16], labels[:16] | (groups[:16] == 0), groups[:16], num_resamples=50)[0] >= 0
    )
