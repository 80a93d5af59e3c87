from fractions import Fraction

import numpy as np
import pytest

from laser_rl.voting import (
    ProblemSamples,
    best_of_n,
    cluster_answers,
    correct_flags,
    majority_vote,
    scaling_curves,
    weighted_majority_vote,
)

T, F = True, False


class FakeEquivalent:
    """Equal as fractions; records every batch it is asked."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def __call__(self, pairs: list[tuple[str, str]]) -> list[bool]:
        self.calls.append(pairs)
        return [Fraction(a) == Fraction(b) for a, b in pairs]


def test_cluster_answers_groups_equivalent_answers_with_few_checks() -> None:
    equivalent = FakeEquivalent()
    ids = cluster_answers(["1/2", None, "0.5", "1/2", "3", "0.50", None], equivalent)
    assert ids == [0, -1, 0, 0, 1, 0, -1]
    # Repeated strings and the first answer need no check; one batch per new string.
    assert equivalent.calls == [[("1/2", "0.5")], [("1/2", "3")], [("1/2", "0.50"), ("3", "0.50")]]


def test_cluster_answers_without_answers() -> None:
    equivalent = FakeEquivalent()
    assert cluster_answers([None, None], equivalent) == [-1, -1]
    assert cluster_answers([], equivalent) == []
    assert equivalent.calls == []


@pytest.mark.parametrize(
    ("ids", "correct", "expected"),
    [
        ([0, 1, 1, -1], [F, T, T, F], True),  # two votes beat one
        ([0, 1, 1, 0], [T, F, F, T], True),  # 2-2 tie: the earliest sample's answer
        ([1, 0, 0, 1], [F, T, T, F], False),
        ([-1, -1, -1, 2], [T, T, T, F], False),  # no-answer samples never win
        ([-1, -1], [T, T], False),  # nothing to vote for
        ([3, 3], [F, T], False),  # a cluster is as correct as its earliest sample
    ],
)
def test_majority_vote(ids: list[int], correct: list[bool], expected: bool) -> None:
    assert majority_vote(ids, correct) == expected


@pytest.mark.parametrize(
    ("ids", "correct", "scores", "expected"),
    [
        ([0, 1, 1], [T, F, F], [0.9, 0.4, 0.4], True),  # 0.9 outweighs 0.8 despite fewer votes
        ([0, 1, 1], [T, F, F], [0.9, 5.0, -4.5], False),  # clipped: 1.0 + 0 > 0.9 (raw sum 0.5 < 0.9)
        ([0, 0, 1], [T, T, F], [0.6, 0.6, 3.0], True),  # clipped: 1.2 > 1.0 (raw 3.0 would win)
        ([0, 1, 1], [F, T, T], [0.8, 0.4, 0.4], True),  # equal weight: more votes win
        ([0, 1, 1], [F, T, T], [-1.0, -1.0, -1.0], True),  # all weights 0: plain majority
        ([0, 1], [F, T], [0.5, 0.5], False),  # full tie: earliest sample
        ([0, 1], [T, F], [np.nan, 0.1], False),  # a missing score weighs 0
        ([-1, -1, 0], [T, T, F], [1.0, 1.0, 0.1], False),  # no-answer samples never win
        ([-1, -1], [T, T], [1.0, 1.0], False),
    ],
)
def test_weighted_majority_vote(ids: list[int], correct: list[bool], scores: list[float], expected: bool) -> None:
    assert weighted_majority_vote(ids, correct, scores) == expected


@pytest.mark.parametrize(
    ("ids", "correct", "scores", "expected"),
    [
        ([0, 1, 2], [F, T, F], [0.2, 0.9, 0.5], True),
        ([0, 0, 0], [F, T, F], [0.2, 0.9, 0.5], True),  # picks the solution, not the cluster
        ([0, -1], [F, T], [0.1, 0.9], False),  # a top-scored sample with no answer is skipped
        ([0, 1], [F, T], [0.7, 0.7], False),  # tie: earliest sample
        ([0, 1], [T, F], [np.nan, -3.0], False),  # a missing score ranks below any score
        ([-1, -1], [T, T], [0.9, 0.9], False),
    ],
)
def test_best_of_n(ids: list[int], correct: list[bool], scores: list[float], expected: bool) -> None:
    assert best_of_n(ids, correct, scores) == expected


def test_voting_rules_run_on_batches_of_subsets() -> None:
    ids = np.array([[0, 1, 1], [0, 1, 1]])
    correct = np.array([[T, F, F], [F, T, T]])
    scores = np.array([[0.9, 0.4, 0.4], [0.9, 0.1, 0.1]])
    assert majority_vote(ids, correct).tolist() == [False, True]
    assert weighted_majority_vote(ids, correct, scores).tolist() == [True, False]
    assert best_of_n(ids, correct, scores).tolist() == [True, False]


def test_problem_samples_checks_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ProblemSamples([0, 1], [T], [0.1, 0.2])


RECORDS = [
    ProblemSamples([0, 1, 1, -1], [T, F, F, F], [0.9, 0.3, 0.3, 0.8]),
    ProblemSamples([0, 0, 1, 2], [T, T, F, F], [0.1, 0.2, 0.9, 0.4]),
]


def test_scaling_curves_by_hand() -> None:
    # num_subsets >= C(4, N) for every N: all subsets are enumerated and the result is exact.
    curves = scaling_curves(RECORDS, [1, 2, 4], num_subsets=6, seed=0)
    assert curves["n"] == [1, 2, 4]
    # N=1: every rule returns the sample's own correctness (unanswered ones count wrong): (1/4 + 2/4) / 2.
    # N=2, problem 1: the three pairs with sample 0 are right for every rule, the other three wrong.
    #      problem 2: majority is right on 5 of 6 pairs (ties go to the earlier, correct cluster),
    #      weighted and best-of-N only on pair (0, 1); pass@2 = 1 - C(3,2)/C(4,2) and 1 - C(2,2)/C(4,2).
    # N=4: majority picks cluster 1 (wrong) then cluster 0 (right); weighted 0.9 > 0.6 (right) then
    #      0.9 > 0.4 > 0.3 (wrong); best-of-N picks samples 0 (right) and 2 (wrong).
    assert curves["majority"] == pytest.approx([3 / 8, (3 / 6 + 5 / 6) / 2, 1 / 2])
    assert curves["weighted_majority"] == pytest.approx([3 / 8, (3 / 6 + 1 / 6) / 2, 1 / 2])
    assert curves["best_of_n"] == pytest.approx([3 / 8, (3 / 6 + 1 / 6) / 2, 1 / 2])
    assert curves["pass_at_n"] == pytest.approx([3 / 8, (1 / 2 + 5 / 6) / 2, 1.0])


def test_scaling_curves_random_subsets_are_seeded_and_unbiased() -> None:
    rng = np.random.default_rng(1)
    records = [ProblemSamples(rng.integers(-1, 3, 8), rng.random(8) < 0.5, rng.random(8)) for _ in range(5)]
    exact = scaling_curves(records, [4, 8], num_subsets=70, seed=0)  # C(8, 4) = 70: enumerated
    sampled = scaling_curves(records, [4, 8], num_subsets=4000, seed=3)
    assert sampled == scaling_curves(records, [4, 8], num_subsets=4000, seed=3)
    for rule in ("majority", "weighted_majority", "best_of_n"):
        assert sampled[rule][0] == pytest.approx(exact[rule][0], abs=0.03)
        assert sampled[rule][1] == exact[rule][1]  # N = K: the one subset
    assert sampled["pass_at_n"] == exact["pass_at_n"]


def test_scaling_curves_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="subset sizes"):
        scaling_curves(RECORDS, [1, 8], num_subsets=4, seed=0)
    with pytest.raises(ValueError, match="at least one problem"):
        scaling_curves([], [1], num_subsets=4, seed=0)


def test_verifier_rewards_are_correct_above_one_half() -> None:
    rewards = [0.2, 0.5, 0.9, float("nan")]
    assert correct_flags(rewards).tolist() == [F, F, T, F]
    assert correct_flags([T, F]).tolist() == [T, F]
    # cluster 1 (two votes, rewards 0.3) wins the majority: a reward of 0.3 is not a correct answer
    assert not majority_vote([0, 1, 1], [0.9, 0.3, 0.3])
    assert best_of_n([0, 1, 1], [0.9, 0.3, 0.3], [0.8, 0.1, 0.1])
    assert ProblemSamples([0, 1], [0.7, 0.4], [0.5, 0.5]).correct.tolist() == [T, F]
