"""Answer clustering, voting over sampled solutions and test-time scaling curves (numpy).

A problem has K sampled solutions, each with an answer cluster id (-1: no extracted answer), a
correctness flag (or its verifier reward in [0, 1]: > 0.5 is correct, as in `laser_rl.metrics`; NaN is
not) and a self-reward score r_s. A voting rule picks one answer from a subset of N of
them and reports whether that answer is correct. Rules shared by all of them:
- samples with no answer never win; when no sample has one, the result is "incorrect";
- ties go to the earliest sample (the lowest index in the subset as given);
- a vote takes a cluster's correctness from its earliest sample in the subset (a cluster's samples
  agree unless the grader and the clustering disagree); best-of-N, from the chosen sample.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from laser_rl.metrics import pass_at_k

# Checks a batch of (representative, candidate) answer pairs, e.g. MathGrader.equivalent.
Equivalent = Callable[[list[tuple[str, str]]], list[bool]]


def cluster_answers(answers: Sequence[str | None], equivalent: Equivalent) -> list[int]:
    """Group answers by mathematical equivalence; clusters are numbered 0, 1, ... by first appearance.

    Identical strings share a cluster without a check. Each new distinct string is checked, in one
    batched call, against the first answer of every existing cluster and joins the first match.

    Args:
        answers: (K,) extracted answers, None where there is none.
        equivalent: see `Equivalent`.

    Returns:
        (K,) cluster ids, -1 for None.
    """
    cluster_of: dict[str, int] = {}
    representatives: list[str] = []
    ids = []
    for answer in answers:
        if answer is None:
            ids.append(-1)
            continue
        if answer not in cluster_of:
            verdicts = equivalent([(rep, answer) for rep in representatives]) if representatives else []
            cluster = next((i for i, same in enumerate(verdicts) if same), len(representatives))
            if cluster == len(representatives):
                representatives.append(answer)
            cluster_of[answer] = cluster
        ids.append(cluster_of[answer])
    return ids


def correct_flags(correct: ArrayLike) -> np.ndarray:
    """Correctness as bools from flags or verifier rewards in [0, 1]: > 0.5 is correct, NaN is not."""
    return np.asarray(correct, dtype=float) > 0.5


def _cluster_totals(cluster_ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(..., N) total weight of each sample's cluster, from (..., N) ids and weights."""
    same = cluster_ids[..., :, None] == cluster_ids[..., None, :]
    return (same * weights[..., None, :]).sum(axis=-1)


def _chosen_is_correct(cluster_ids: np.ndarray, correct: ArrayLike, *keys: np.ndarray) -> np.ndarray:
    """Whether the chosen sample is correct: answered first, then the largest keys, then the earliest.

    Args:
        cluster_ids: (..., N) int, -1 for no answer.
        correct: (..., N) bool, or verifier rewards (see `correct_flags`).
        keys: (..., N) each, most important first.

    Returns:
        (...) bool.
    """
    answered = cluster_ids >= 0
    position = np.broadcast_to(np.arange(cluster_ids.shape[-1]), cluster_ids.shape)
    # lexsort orders by its last key first, ascending, so the chosen sample comes last.
    order = np.lexsort((-position, *reversed(keys), answered), axis=-1)
    chosen = order[..., -1:]
    hit = correct_flags(correct) & answered
    return np.take_along_axis(hit, chosen, axis=-1)[..., 0]


def majority_vote(cluster_ids: ArrayLike, correct: ArrayLike) -> np.ndarray:
    """Whether the most frequent answer is correct.

    Args:
        cluster_ids: (..., N) int, -1 for no answer.
        correct: (..., N) bool, or verifier rewards (see `correct_flags`).

    Returns:
        (...) bool, one per subset (a 0-d array for a single subset).
    """
    ids = np.asarray(cluster_ids)
    return _chosen_is_correct(ids, correct, _cluster_totals(ids, np.ones(ids.shape)))


def weighted_majority_vote(cluster_ids: ArrayLike, correct: ArrayLike, scores: ArrayLike) -> np.ndarray:
    """Whether the answer with the largest total of clip(r_s, 0, 1) is correct (the paper's weighted vote).

    Equal totals go to the answer with more votes, then to the earliest sample; a NaN score weighs 0.

    Args:
        cluster_ids: (..., N) int, -1 for no answer.
        correct: (..., N) bool, or verifier rewards (see `correct_flags`).
        scores: (..., N) float self-reward scores.

    Returns:
        (...) bool.
    """
    ids = np.asarray(cluster_ids)
    weights = np.nan_to_num(np.clip(np.asarray(scores, dtype=float), 0.0, 1.0))
    return _chosen_is_correct(ids, correct, _cluster_totals(ids, weights), _cluster_totals(ids, np.ones(ids.shape)))


def best_of_n(cluster_ids: ArrayLike, correct: ArrayLike, scores: ArrayLike) -> np.ndarray:
    """Whether the answered sample with the highest score is correct; a NaN score ranks lowest.

    Args:
        cluster_ids: (..., N) int, -1 for no answer.
        correct: (..., N) bool, or verifier rewards (see `correct_flags`).
        scores: (..., N) float self-reward scores.

    Returns:
        (...) bool.
    """
    ranked = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    return _chosen_is_correct(np.asarray(cluster_ids), correct, ranked)


@dataclass(frozen=True)
class ProblemSamples:
    """The K sampled solutions of one problem, as numpy arrays.

    cluster_ids: (K,) int answer clusters (see `cluster_answers`), -1 where there is no answer.
    correct: (K,) bool (verifier rewards in [0, 1] become `correct_flags`).
    scores: (K,) float self-reward scores, NaN where there is none.
    """

    cluster_ids: np.ndarray
    correct: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        # Frozen: the conversions go through object.__setattr__.
        object.__setattr__(self, "cluster_ids", np.asarray(self.cluster_ids, dtype=np.int64))
        object.__setattr__(self, "correct", correct_flags(self.correct))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=float))
        shapes = {self.cluster_ids.shape, self.correct.shape, self.scores.shape}
        if len(shapes) != 1 or self.correct.ndim != 1:
            raise ValueError(f"ProblemSamples needs three arrays of one shape (K,), got {sorted(shapes)}")


def _subsets(k: int, n: int, num_subsets: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n) sorted sample indices: all C(k, n) subsets if there are at most `num_subsets`, else
    `num_subsets` random ones, each drawn without replacement."""
    if math.comb(k, n) <= num_subsets:
        return np.array(list(itertools.combinations(range(k), n)))
    return np.sort(rng.random((num_subsets, k)).argsort(axis=1)[:, :n], axis=1)


def scaling_curves(
    records: Sequence[ProblemSamples], ns: Sequence[int], num_subsets: int, seed: int
) -> dict[str, list]:
    """Test-time scaling: accuracy of each way to pick one of N sampled solutions, as N grows.

    For each problem and N, the rules run on N-subsets of its K samples (see `_subsets`; they keep
    the samples' order, so ties go to the lowest sample index); accuracies are averaged over the
    subsets, then over problems. pass@N, the ceiling, is the exact unbiased estimator.

    Args:
        records: one per problem.
        ns: subset sizes, each at most every problem's K.
        num_subsets: random subsets per problem and N.
        seed: seeds the subsets.

    Returns:
        n: list(ns); majority, weighted_majority, best_of_n, pass_at_n: (len(ns),) accuracies.
    """
    if not records:
        raise ValueError("scaling_curves needs at least one problem")
    smallest_k = min(len(record.correct) for record in records)
    if not all(1 <= n <= smallest_k for n in ns):
        raise ValueError(f"subset sizes must lie in [1, {smallest_k}] (the smallest K), got {list(ns)}")
    rng = np.random.default_rng(seed)
    totals = np.zeros((4, len(ns)))
    for record in records:
        k, num_correct = len(record.correct), int(record.correct.sum())
        for j, n in enumerate(ns):
            subsets = _subsets(k, n, num_subsets, rng)
            ids, correct, scores = record.cluster_ids[subsets], record.correct[subsets], record.scores[subsets]
            totals[:, j] += (
                majority_vote(ids, correct).mean(),
                weighted_majority_vote(ids, correct, scores).mean(),
                best_of_n(ids, correct, scores).mean(),
                pass_at_k(k, num_correct, n),
            )
    means = (totals / len(records)).tolist()
    return {
        "n": list(ns),
        "majority": means[0],
        "weighted_majority": means[1],
        "best_of_n": means[2],
        "pass_at_n": means[3],
    }
