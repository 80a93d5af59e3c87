"""How well self-reward scores separate correct from wrong solutions (pure torch).

A solution counts as correct when its verifier reward is > 0.5, and as "judged correct" when
its score is > `threshold` (0.5 in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed from average ranks (Mann-Whitney U), O(N log N).

    Args:
        scores: (N,) any real scores.
        labels: (N,) bool, True for positives.

    Returns:
        The AUROC, or NaN when one class is absent.
    """
    scores, labels = scores.double().flatten(), labels.bool().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    values, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1  # 1-based rank of each distinct value's first copy
    average_rank = first_rank.double() + (counts.double() - 1) / 2
    rank_sum = average_rank[inverse][labels].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def self_verification_metrics(
    scores: torch.Tensor, verifier_rewards: torch.Tensor, threshold: float = 0.5
) -> dict[str, float]:
    """The paper's self-verification metrics on a batch of solutions.

    Args:
        scores: (N,) self-reward scores r_s.
        verifier_rewards: (N,) r_v in [0, 1]; > 0.5 counts as correct.
        threshold: scores above it mean "judged correct".

    Returns:
        acc_correct: share of correct solutions judged correct (NaN if none);
        acc_wrong: share of wrong solutions judged wrong (NaN if none);
        f1: harmonic mean of the two (the paper's F1; NaN if either is NaN);
        auroc: see `auroc`.
    """
    correct = verifier_rewards > 0.5
    judged_correct = scores > threshold

    def share(selected: torch.Tensor, of: torch.Tensor) -> float:
        return selected[of].float().mean().item() if bool(of.any()) else math.nan

    acc_correct = share(judged_correct, correct)
    acc_wrong = share(~judged_correct, ~correct)
    if math.isnan(acc_correct) or math.isnan(acc_wrong):
        f1 = math.nan
    elif acc_correct + acc_wrong == 0:
        f1 = 0.0
    else:
        f1 = 2 * acc_correct * acc_wrong / (acc_correct + acc_wrong)
    return {"acc_correct": acc_correct, "acc_wrong": acc_wrong, "f1": f1, "auroc": auroc(scores, correct)}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Evaluated as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which stays stable where the binomials overflow.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def expected_calibration_error(
    scores: torch.Tensor, labels: torch.Tensor, num_bins: int = 10
) -> tuple[float, dict[str, list]]:
    """ECE of scores read as probabilities of being correct, with equal-width bins on [0, 1].

    Scores are clipped to [0, 1]; bin b holds scores in [b/num_bins, (b+1)/num_bins), the last bin
    also holds 1. ECE = sum_b count_b / N * |accuracy_b - confidence_b|.

    Args:
        scores: (N,) self-reward scores.
        labels: (N,) bool, True for correct solutions.
        num_bins: number of bins.

    Returns:
        The ECE (NaN when N = 0), and the reliability-diagram data, lists over bins:
        bin_edges (num_bins + 1), confidence (mean clipped score), accuracy (share correct),
        count (solutions in the bin); confidence and accuracy are NaN for empty bins.
    """
    confidence = scores.double().flatten().clamp(0.0, 1.0)
    correct = labels.bool().flatten().double()
    bins = (confidence * num_bins).floor().long().clamp(max=num_bins - 1)
    count = torch.bincount(bins, minlength=num_bins).double()
    mean_confidence = torch.bincount(bins, weights=confidence, minlength=num_bins) / count
    accuracy = torch.bincount(bins, weights=correct, minlength=num_bins) / count
    gaps = (count * (accuracy - mean_confidence).abs()).nansum()  # empty bins are 0/0 = NaN
    ece = gaps.item() / len(confidence) if len(confidence) else math.nan
    reliability = {
        "bin_edges": torch.linspace(0.0, 1.0, num_bins + 1, dtype=torch.float64).tolist(),
        "confidence": mean_confidence.tolist(),
        "accuracy": accuracy.tolist(),
        "count": count.long().tolist(),
    }
    return ece, reliability


def best_f1_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold t that maximises the F1 of "judged correct = score > t" (the lowest such t).

    For signals with no natural threshold (a mean log-prob), fitted on one set of solutions and
    applied to another; t lies halfway between two neighbouring scores, so that it leaves a margin on
    both sides for the other set.

    Args:
        scores: (N,) any real scores.
        labels: (N,) bool, True for correct solutions.

    Returns:
        t: a midpoint between neighbouring distinct scores, or 1 below the lowest (everything judged
        correct) or the highest score (nothing judged correct); NaN when a class is absent.
    """
    scores, labels = scores.double().flatten(), labels.bool().flatten()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    distinct = torch.unique(scores)
    candidates = torch.cat([distinct[:1] - 1, (distinct[1:] + distinct[:-1]) / 2, distinct[-1:]])
    above = scores.unsqueeze(0) > candidates.unsqueeze(1)  # (T, N): judged correct under each threshold
    acc_correct = (above & labels).sum(1).double() / n_pos
    acc_wrong = (~above & ~labels).sum(1).double() / n_neg
    f1 = 2 * acc_correct * acc_wrong / (acc_correct + acc_wrong).clamp(min=1e-12)
    return candidates[int(f1.argmax())].item()


def cross_fitted_metrics(scores: torch.Tensor, labels: torch.Tensor, half: torch.Tensor) -> dict[str, float]:
    """`self_verification_metrics` of a signal without a natural threshold: each half of the solutions is
    judged with the F1-best threshold of the other half (split by problem, so that no solution sets its
    own threshold); AUROC over all.

    Args:
        scores: (N,) any real scores.
        labels: (N,) bool, True for correct solutions.
        half: (N,) bool, the half each solution belongs to.
    """
    judged_correct = torch.zeros_like(labels, dtype=torch.bool)
    for judged in (half, ~half):
        threshold = best_f1_threshold(scores[~judged], labels[~judged])
        judged_correct[judged] = scores[judged] > threshold  # NaN threshold (a class absent): judged wrong
    metrics = self_verification_metrics(judged_correct.double(), labels.double())
    return metrics | {"auroc": auroc(scores, labels)}


def bootstrap_interval(
    statistic: Callable[[torch.Tensor, torch.Tensor], float],
    scores: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(scores, labels)`, resampling whole groups (the solutions
    of one problem are not independent of each other).

    Args:
        statistic: e.g. `auroc`; NaN results (a class absent from a resample) are left out.
        scores: (N,) scores.
        labels: (N,) labels as `statistic` takes them.
        groups: (N,) int, the group (problem) of each solution.

    Returns:
        (low, high); NaN when no resample gives a number.
    """
    generator = torch.Generator().manual_seed(seed)
    group_ids, members = torch.unique(groups, return_inverse=True)
    rows = [torch.nonzero(members == g).squeeze(1) for g in range(len(group_ids))]
    values = []
    for _ in range(num_resamples):
        drawn = torch.randint(len(rows), (len(rows),), generator=generator)
        index = torch.cat([rows[g] for g in drawn.tolist()])
        value = statistic(scores[index], labels[index])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    ordered = torch.tensor(values, dtype=torch.float64)
    tail = (1 - level) / 2
    return torch.quantile(ordered, tail).item(), torch.quantile(ordered, 1 - tail).item()
