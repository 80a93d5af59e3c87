"""What went wrong in a worked addition, and which of those mistakes the self-reward score sees.

A 2-layer model can learn to see a carry slip (two tokens that contradict each other), not a wrong
column sum (it would have to redo the addition): the report breaks self-verification down by kind so
that the difference shows (docs/demo.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from laser_rl.demo.task import Problem, answer_from_working, columns
from laser_rl.grading import extract_last_boxed
from laser_rl.metrics import auroc

# One working line, e.g. "7+3+1=11 c1": digits, the carry in (absent when 0), the total, the carry out.
LINE = re.compile(r"(\d)\+(\d)(?:\+(\d))?=(\d+) c(\d)")

CARRY_SLIP = "carry slip"  # the total is right, the carry passed on is not: the warm start's deliberate slip
WRONG_SUM = "wrong sum"
MISREAD = "misread digit"  # a column's digit is not the problem's
CARRY_IN = "carry not taken"  # the carry added in is not the one the line above passed on
LINES = "missing, extra or garbled line"
MISCOPIED = "answer miscopied"  # the boxed answer is not what the working adds up to
NO_ANSWER = "no boxed answer"


def error_kinds(problem: Problem, response: str) -> set[str]:
    """The kinds of mistake in a solution's working and answer; empty for a flawless solution.

    Each working line is checked against the problem's digits and the line above, so one early slip
    is counted once: the lines after it that follow its carry correctly are not mistakes.
    """
    expected_columns = columns(problem)
    *working, last = response.strip().split("\n")
    kinds = set()
    if len(working) != len(expected_columns):
        kinds.add(LINES)
    carry, digits = 0, []
    for i, line in enumerate(working):
        match = LINE.fullmatch(line.strip())
        if match is None:
            kinds.add(LINES)
            continue
        x, y, carry_in, total, carry_out = (int(group or 0) for group in match.groups())
        if i < len(expected_columns) and (x, y) != expected_columns[i]:
            kinds.add(MISREAD)
        if carry_in != carry:
            kinds.add(CARRY_IN)
        if total != x + y + carry_in:
            kinds.add(WRONG_SUM)
        elif carry_out != total // 10:
            kinds.add(CARRY_SLIP)
        carry = carry_out
        digits.append(total % 10)
    boxed = extract_last_boxed(last)
    if boxed is None:
        kinds.add(NO_ANSWER)
    elif boxed != answer_from_working(digits, carry):
        kinds.add(MISCOPIED)
    return kinds


def score_by_error_kind(
    problems: Sequence[Problem], records: Sequence[dict], threshold: float = 0.5
) -> dict[str, dict[str, float | int | None]]:
    """Self-verification of the wrong solutions holding each kind of mistake, against all right ones.

    Args:
        problems: the records' problems, in order.
        records: the demo's evaluation records (`responses`, `acc_list`, `self_rewarding_scores`,
            None for a truncated solution, which scores 0 as in the report).
        threshold: scores above it mean "judged correct".

    Returns:
        {kind: {"count": wrong solutions with that kind (one solution may hold several kinds),
        "judged_wrong": share of them scored <= threshold, "auroc": AUROC of the score between the
        right solutions and them (None without right solutions)}}, most frequent kind first.
    """
    right_scores: list[float] = []
    counts: dict[str, list[float]] = {}  # kind -> scores of the wrong solutions holding it
    for problem, record in zip(problems, records, strict=True):
        for response, reward, score in zip(
            record["responses"], record["acc_list"], record["self_rewarding_scores"], strict=True
        ):
            score = 0.0 if score is None else score
            if reward > 0.5:
                right_scores.append(score)
            else:
                for kind in error_kinds(problem, response):
                    counts.setdefault(kind, []).append(score)
    result = {}
    for kind, scores in sorted(counts.items(), key=lambda item: (-len(item[1]), item[0])):
        separation = auroc(
            torch.tensor(right_scores + scores), torch.tensor([True] * len(right_scores) + [False] * len(scores))
        )
        result[kind] = {
            "count": len(scores),
            "judged_wrong": sum(score <= threshold for score in scores) / len(scores),
            "auroc": None if separation != separation else separation,
        }
    return result
