"""The demo's error classifier and the self-verification it breaks down by kind of mistake."""

import random

import pytest

from laser_rl.demo.errors import (
    CARRY_IN,
    CARRY_SLIP,
    LINES,
    MISCOPIED,
    MISREAD,
    NO_ANSWER,
    WRONG_SUM,
    error_kinds,
    score_by_error_kind,
)
from laser_rl.demo.task import Problem, corrupted_solution, sample_problems, solution, verify

# 478+395: 8+5=13 c1 / 7+9+1=17 c1 / 4+3+1=8 c0 / \boxed{873}
PROBLEM = Problem(478, 395)
GOLD = solution(PROBLEM)


def test_gold_solutions_have_no_mistake():
    assert all(error_kinds(p, solution(p)) == set() for p in sample_problems(200, "train", seed=3))


def test_the_warm_starts_deliberate_slip_is_a_carry_slip_and_nothing_else():
    rng = random.Random(0)
    for problem in sample_problems(200, "train", seed=4):
        corrupted = corrupted_solution(problem, rng)
        assert error_kinds(problem, corrupted) == {CARRY_SLIP}
        assert verify(corrupted, problem.answer) == 0.0


@pytest.mark.parametrize(
    ("old", "new", "kinds"),
    [
        ("8+5=13 c1", "8+5=14 c1", {WRONG_SUM, MISCOPIED}),  # the boxed 873 no longer follows from the working
        ("8+5=13 c1", "8+6=14 c1", {MISREAD, MISCOPIED}),  # adds right, from the wrong digit
        ("7+9+1=17", "7+9=17", {CARRY_IN, WRONG_SUM}),  # drops the carry and still writes its total
        ("\\boxed{873}", "\\boxed{883}", {MISCOPIED}),
        ("\\boxed{873}", "so 873", {NO_ANSWER}),
        ("4+3+1=8 c0\n", "", {LINES, MISCOPIED}),
        ("4+3+1=8 c0", "4+3+1=8 c0 ok", {LINES, MISCOPIED}),
    ],
)
def test_each_kind_of_mistake_is_named(old, new, kinds):
    assert old in GOLD
    assert error_kinds(PROBLEM, GOLD.replace(old, new)) == kinds


def test_a_slip_is_counted_once_where_it_happens():
    # the carry slip in the units column changes every later line, each consistent with the one above
    slipped = "8+5=13 c0\n7+9=16 c1\n4+3+1=8 c0\n\\boxed{863}"
    assert error_kinds(PROBLEM, slipped) == {CARRY_SLIP}


def test_score_by_error_kind_counts_and_separates():
    slip = GOLD.replace("8+5=13 c1\n7+9+1=17", "8+5=13 c0\n7+9=16").replace("873", "863")
    records = [
        {
            "responses": [GOLD, GOLD, slip, slip, GOLD + "\nextra"],
            "acc_list": [1.0, 1.0, 0.0, 0.0, 0.0],
            # the score puts both slips below every right solution; None = truncated, which scores 0
            "self_rewarding_scores": [0.9, 0.7, 0.1, 0.6, None],
        }
    ]
    result = score_by_error_kind([PROBLEM], records)
    assert list(result) == [CARRY_SLIP, LINES, NO_ANSWER]  # most frequent first, then by name
    assert result[CARRY_SLIP] == {"count": 2, "judged_wrong": 0.5, "auroc": 1.0}
    assert result[NO_ANSWER] == {"count": 1, "judged_wrong": 1.0, "auroc": 1.0}

    miscopied = GOLD.replace("873", "883")
    records[0]["responses"] += [miscopied, miscopied]
    records[0]["acc_list"] += [0.0, 0.0]
    records[0]["self_rewarding_scores"] += [0.8, 0.3]  # 0.8 sits above the right solution scored 0.7
    result = score_by_error_kind([PROBLEM], records)
    assert result[MISCOPIED] == {"count": 2, "judged_wrong": 0.5, "auroc": 0.75}


def test_score_by_error_kind_without_right_solutions_has_no_auroc():
    records = [{"responses": [GOLD.replace("873", "883")], "acc_list": [0.0], "self_rewarding_scores": [0.2]}]
    assert score_by_error_kind([PROBLEM], records) == {MISCOPIED: {"count": 1, "judged_wrong": 1.0, "auroc": None}}
