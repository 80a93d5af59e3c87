"""A trivial judge that sees only a solution's length and format: the bar a self-reward must clear.

Logistic regression on surface features (characters, lines, a boxed answer, EOS reached),
cross-fitted over two halves of the problems so that no solution is judged by a model fitted on it.
"""

from __future__ import annotations

import torch

from laser_rl.metrics import self_verification_metrics
from laser_rl.report import nan_to_none


def surface_features(response: str, finished: bool) -> list[float]:
    """(4,) features: length in hundreds of characters, lines, has a \\boxed{}, reached EOS."""
    return [len(response) / 100, response.count("\n") / 10, float("\\boxed{" in response), float(finished)]


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, steps: int = 200) -> torch.nn.Linear:
    """L2-regularised logistic regression (N, F) -> (N,) bool, fitted with LBFGS."""
    torch.manual_seed(0)
    model = torch.nn.Linear(features.size(1), 1)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(features).squeeze(1), labels) + 1e-3 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def length_format_judge(records: list[dict]) -> dict[str, float | None]:
    """Self-verification metrics (F1, AUROC, ...) of the trivial judge on records in the authors' format.

    Records need `responses`, `acc_list` and optionally `finished`; problems of even index and of
    odd index are judged by a model fitted on the other half.
    """
    halves = []
    for parity in (0, 1):
        rows = [
            (surface_features(text, done), float(correct > 0.5))
            for record in records[parity::2]
            for text, done, correct in zip(
                record["responses"],
                record.get("finished", [True] * len(record["responses"])),
                record["acc_list"],
                strict=True,
            )
        ]
        halves.append((torch.tensor([f for f, _ in rows]), torch.tensor([y for _, y in rows])))
    scores, labels = [], []
    for fit, judged in ((halves[1], halves[0]), (halves[0], halves[1])):
        if len(fit[1]) == 0 or len(judged[1]) == 0:
            continue
        with torch.no_grad():
            scores.append(torch.sigmoid(fit_logistic(*fit)(judged[0]).squeeze(1)))
        labels.append(judged[1])
    if not scores:
        return {"acc_correct": None, "acc_wrong": None, "f1": None, "auroc": None}
    metrics = self_verification_metrics(torch.cat(scores), torch.cat(labels))
    return nan_to_none(metrics)
