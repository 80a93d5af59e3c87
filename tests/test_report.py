import json
from fractions import Fraction
from pathlib import Path

import pytest

from laser_rl.errors import LaserInputError
from laser_rl.jsonl import write_atomically
from laser_rl.report import _doublings, build_report, evaluate_records, render_markdown

FILES = {"report.json", "report.md", "scaling.png", "score_histogram.png", "reliability.png"}


def fraction_equivalent(pairs: list[tuple[str, str]]) -> list[bool]:
    return [Fraction(a) == Fraction(b) for a, b in pairs]


def records() -> list[dict]:
    """The two problems of test_voting's scaling example, with one unfinished and one unscored solution."""
    return [
        {
            "problem": "p1",
            "answer": "1",
            "responses": ["a", "b", "c", "d"],
            "pred_answers": ["1", "2", "2", None],
            "acc_list": [1, 0, 0, 0],
            "self_rewarding_scores": [0.9, 0.3, 0.3, 0.8],
            "finished": [True, True, True, False],  # its 0.8 counts as 0
            "answer_clusters": [0, 1, 1, -1],
        },
        {
            "problem": "p2",
            "answer": "1/2",
            "responses": ["a", "b", "c", "d"],
            "pred_answers": ["1/2", "0.5", "3", "4"],  # clustered by fraction_equivalent: 0, 0, 1, 2
            "acc_list": [1.0, 1.0, 0.0, 0.0],
            "self_rewarding_scores": [0.1, None, 0.9, 0.4],
        },
    ]


def test_doublings() -> None:
    assert _doublings(1) == [1]
    assert _doublings(4) == [1, 2, 4]
    assert _doublings(6) == [1, 2, 4, 6]


def test_evaluate_records_by_hand() -> None:
    results = evaluate_records(records(), equivalent=fraction_equivalent)
    assert (results["num_problems"], results["num_solutions"]) == (2, 8)
    assert (results["num_answered"], results["num_scored"]) == (7, 6)
    assert results["accuracy"] == pytest.approx(3 / 8)
    assert results["pass_at_k"] == pytest.approx({"1": 3 / 8, "2": (1 / 2 + 5 / 6) / 2, "4": 1.0})

    # Scores as used: 0.9 0.3 0.3 0 | 0.1 0 0.9 0.4 with correct T F F F | T T F F.
    every = results["self_verification"]["all"]
    assert every["acc_correct"] == pytest.approx(1 / 3)  # 0.9 of 0.9, 0.1, 0
    assert every["acc_wrong"] == pytest.approx(4 / 5)  # all but 0.9
    assert every["f1"] == pytest.approx(8 / 17)
    assert every["auroc"] == pytest.approx(6 / 15)  # 4.5 + 1 + 0.5 wins over 15 pairs
    # bins 0 {0 F, 0 T}, 1 {0.1 T}, 3 {0.3 F, 0.3 F}, 4 {0.4 F}, 9 {0.9 T, 0.9 F}
    assert every["ece"] == pytest.approx((2 * 0.5 + 0.9 + 2 * 0.3 + 0.4 + 2 * 0.4) / 8)
    assert results["reliability"]["all"]["count"] == [2, 1, 0, 2, 1, 0, 0, 0, 0, 2]
    assert results["reliability"]["all"]["accuracy"][2] is None  # empty bin, NaN in JSON terms

    answered = results["self_verification"]["answered"]  # without the unfinished solution
    assert answered["acc_wrong"] == pytest.approx(3 / 4)
    assert answered["f1"] == pytest.approx(6 / 13)
    assert answered["auroc"] == pytest.approx(3.5 / 12)
    assert answered["ece"] == pytest.approx((1 + 0.9 + 2 * 0.3 + 0.4 + 2 * 0.4) / 7)

    histogram = results["score_histogram"]  # scored solutions only
    assert histogram["edges"][0] == pytest.approx(0.1) and histogram["edges"][-1] == pytest.approx(0.9)
    assert (sum(histogram["correct"]), sum(histogram["wrong"])) == (2, 4)

    scaling = results["scaling"]  # the hand values of test_voting.test_scaling_curves_by_hand
    assert scaling["n"] == [1, 2, 4]
    assert scaling["majority"] == pytest.approx([3 / 8, 2 / 3, 1 / 2])
    assert scaling["weighted_majority"] == pytest.approx([3 / 8, 1 / 3, 1 / 2])
    assert scaling["best_of_n"] == pytest.approx([3 / 8, 1 / 3, 1 / 2])


def test_solutions_the_verifier_could_not_judge_are_left_out_of_accuracy_and_self_verification() -> None:
    plain = evaluate_records(records(), equivalent=fraction_equivalent)
    unjudged = records()
    for record in unjudged:  # a fifth solution, with an answer and a high score, that no verifier judged
        for field, value in [("responses", "e"), ("pred_answers", "7"), ("acc_list", None)]:
            record[field] = [*record[field], value]
        record["self_rewarding_scores"] = [*record["self_rewarding_scores"], 0.95]
        record.get("finished", []).append(True)
        record.get("answer_clusters", []).append(2)
    results = evaluate_records(unjudged, equivalent=fraction_equivalent)
    assert (results["num_solutions"], results["num_judged"], plain["num_judged"]) == (10, 8, 8)
    for name in ("accuracy", "self_verification", "reliability", "score_histogram"):
        assert results[name] == plain[name], name
    assert results["pass_at_k"]["1"] == pytest.approx((1 / 5 + 2 / 5) / 2)  # counted as not correct there
    assert "| 2 | 10 | 9 | 8 | 8 | 37.5 |" in render_markdown(results)


def test_build_report_writes_every_file(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    results = build_report(records(), out_dir, equivalent=fraction_equivalent)
    assert {path.name for path in out_dir.iterdir()} == FILES  # and no temporary file left
    assert json.loads((out_dir / "report.json").read_text()) == results
    markdown = (out_dir / "report.md").read_text()
    assert "| 2 | 66.7 | 33.3 | 33.3 | 66.7 |" in markdown  # scaling row N=2
    assert "| all | 33.3 | 80.0 | 47.1 | 0.400 | 0.463 |" in markdown
    assert "| pass@k | 37.5 | 66.7 | 100.0 |" in markdown
    for name in FILES - {"report.json", "report.md"}:
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_one_class_gives_null_not_nan(tmp_path: Path) -> None:
    record = {**records()[0], "acc_list": [1, 1, 1, 1]}
    results = build_report([record], tmp_path)
    verification = results["self_verification"]["all"]
    assert verification["acc_wrong"] is None and verification["f1"] is None and verification["auroc"] is None
    assert "| all | 25.0 | n/a | n/a | n/a |" in render_markdown(results)  # 0.9 of 0.9, 0.3, 0.3, 0
    assert json.loads((tmp_path / "report.json").read_text()) == results


def test_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("old")

    def fail(file) -> None:
        file.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    assert path.read_text() == "old"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"acc_list": [1, 0]}, "record 0: acc_list has 2 items, responses has 4"),
        ({"answer_clusters": [0, 1, 1, 2]}, "answer_clusters must be -1 exactly where"),
        ({"answer_clusters": None}, "no answer_clusters, and no equivalence check"),
        ({"self_rewarding_scores": None}, "missing field"),
    ],
)
def test_bad_records_are_named(change: dict, message: str) -> None:
    record = {key: value for key, value in {**records()[0], **change}.items() if value is not None}
    with pytest.raises(LaserInputError, match=message):
        evaluate_records([record])


def test_fractional_rewards_count_correct_above_one_half_and_accuracy_is_their_mean() -> None:
    """A judge's probabilities on the same side of 0.5 as the 0/1 rewards give the same report but accuracy."""
    soft = records()
    soft[0]["acc_list"] = [0.9, 0.5, 0.2, 0.0]  # exactly 0.5 is not correct
    soft[1]["acc_list"] = [0.75, 0.51, 0.3, 0.1]
    hard, fractional = (evaluate_records(rows, equivalent=fraction_equivalent) for rows in (records(), soft))
    assert fractional["accuracy"] == pytest.approx((0.9 + 0.5 + 0.2 + 0.75 + 0.51 + 0.3 + 0.1) / 8)
    for key in ("pass_at_k", "self_verification", "reliability", "score_histogram", "scaling"):
        assert fractional[key] == hard[key], key
