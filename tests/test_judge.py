import pytest

from laser_rl.demo.judge import length_format_judge, surface_features


def records(long_is_correct: bool) -> list[dict]:
    short, long = "\\boxed{1}", "step\n" * 8 + "\\boxed{1}"
    rows = []
    for _ in range(10):
        responses = [short, long, short, long]
        correct = [float(long_is_correct == (text == long)) for text in responses]
        rows.append({"responses": responses, "finished": [True] * 4, "acc_list": correct})
    return rows


def test_surface_features():
    assert surface_features("ab\n\\boxed{3}", True) == pytest.approx([0.12, 0.1, 1.0, 1.0])


@pytest.mark.parametrize("long_is_correct", [True, False])
def test_judge_separates_what_length_alone_tells(long_is_correct):
    metrics = length_format_judge(records(long_is_correct))
    assert metrics["auroc"] == pytest.approx(1.0) and metrics["f1"] == pytest.approx(1.0)


def test_judge_is_at_chance_when_length_tells_nothing():
    rows = [
        {"responses": ["\\boxed{1}", "\\boxed{2}"], "finished": [True, True], "acc_list": [i % 2, 1 - i % 2]}
        for i in range(10)
    ]
    assert length_format_judge(rows)["auroc"] == pytest.approx(0.5)
