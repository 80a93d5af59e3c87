import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from laser_rl.grading import MAX_ANSWER_CHARS, MathGrader, extract_last_boxed, math_reward

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
BENCHMARK_NAMES = ("math500", "aime24", "amc23")


@pytest.fixture(scope="module")
def grader():
    with MathGrader(timeout=3.0) as grader:
        yield grader


def _respond(answer: str) -> str:
    return f"Let me think step by step.\n\nSo the final answer is $\\boxed{{{answer}}}$."


# --- extraction ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("\\boxed{\\sqrt{\\frac{a}{b^{2}}}}", "\\sqrt{\\frac{a}{b^{2}}}"),
        ("first \\boxed{200}, then \\boxed{204}", "204"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed {5}", "5"),
        ("\\fbox{7}", "7"),
        ("\\boxed{1} and \\fbox{2}", "2"),
        ("\\boxed{}", ""),
        ("\\boxed{1} but then \\boxed{2", None),
        ("\\boxed{\\frac{1}{2}", None),
        ("no box here", None),
        ("\\boxed 5", None),
        ("", None),
    ],
)
def test_extract_last_boxed(text, expected):
    assert extract_last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x" * 5_000_000 + "\\boxed{" + "{" * 100_000 + "1" + "}" * 100_001, "{" * 100_000 + "1" + "}" * 100_000),
        ("\\boxed{1} " * 500_000, "1"),
        ("\\boxed{" + "{" * 5_000_000, None),
    ],
    ids=["long-text-deep-box", "many-boxes", "unclosed"],
)
def test_extract_last_boxed_is_linear_on_megabytes(text, expected):
    # Timed against one pass over the text's braces in the same run, so a loaded machine slows both: a
    # quadratic scan of these texts would take hours, a linear one about as long as that pass.
    start = time.perf_counter()
    sum(1 for _ in re.finditer(r"[{}]", text))
    one_pass = time.perf_counter() - start
    start = time.perf_counter()
    assert extract_last_boxed(text) == expected
    assert time.perf_counter() - start < 5 * one_pass + 0.1


# --- grading basics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "score"),
    [
        ("\\frac{1}{2}", "0.5", 1.0),
        ("0.5", "\\frac{1}{2}", 1.0),
        ("2\\sqrt{2}", "\\sqrt{8}", 1.0),
        ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", 1.0),
        ("[1, 2)", "[1,2)", 1.0),
        ("(-\\infty, 0]", "(-\\infty,0]", 1.0),
        ("(1,2]", "[1,2)", 0.0),
        ("x=3", "3", 1.0),
        ("3", "x=3", 1.0),
        ("10,\\!080", "10080", 1.0),
        ("\\text{(C)}", "C", 1.0),
        ("204.", "204", 1.0),  # parsed only as math
        ("\\frac{1}{2}.", "0.5", 1.0),  # parsed only as a box
        ("3", "4", 0.0),
        ("\\frac{1}{3}", "0.5", 0.0),
        ("x + 1", "x - 1", 0.0),
        ("", "0", 0.0),
        (None, "1", 0.0),
    ],
)
def test_grade(grader, prediction, gold, score):
    assert grader.grade([prediction], [gold]) == [score]


def test_grade_keeps_order_and_converts_non_string_golds(grader):
    predictions = ["1", "2", None, "\\frac{6}{2}", "5"]
    assert grader.grade(predictions, [1, "3", "3", "3", "5"]) == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_grade_rejects_mismatched_lengths(grader):
    with pytest.raises(ValueError):
        grader.grade(["1", "2"], ["1"])


def test_answers_over_the_length_cap_score_zero(grader):
    padded_one = "0" * (MAX_ANSWER_CHARS - 1) + "1"
    assert grader.grade([padded_one, "0" + padded_one], ["1", "1"]) == [1.0, 0.0]


def test_equivalent(grader):
    pairs = [("\\frac{1}{2}", "0.5"), ("2", "3"), ("\\{1,2\\}", "\\{2,1\\}"), ("x^2-1", "(x-1)(x+1)")]
    assert grader.equivalent(pairs) == [True, False, True, True]
    assert grader.equivalent([]) == []


# --- real benchmark answers ---------------------------------------------------------------------------


def _reference_answers() -> list[tuple[str, str]]:
    """(where, answer) for every problem of the benchmarks."""
    paths = [BENCHMARKS / f"{name}.jsonl" for name in BENCHMARK_NAMES]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"benchmark files not found under {BENCHMARKS}")
    return [
        (f"{path.stem}:{line_number}", json.loads(line)["answer"])
        for path in paths
        for line_number, line in enumerate(path.read_text().splitlines(), start=1)
    ]


def _alterations(answer: str) -> list[str]:
    """Wrong versions of an answer: "+1" appended, and the number, or its first digit (mod 10), plus one."""
    if re.fullmatch(r"-?\d+", answer):
        return [answer + "+1", str(int(answer) + 1)]
    digit = re.search(r"\d", answer)
    if digit is None:
        return [answer + "+1"]
    bumped = str((int(digit[0]) + 1) % 10)
    return [answer + "+1", answer[: digit.start()] + bumped + answer[digit.end() :]]


def test_every_reference_answer_grades_correct_against_itself(grader):
    answers = _reference_answers()
    predictions = [extract_last_boxed(_respond(answer)) for _, answer in answers]
    scores = grader.grade(predictions, [answer for _, answer in answers])
    failures = [f"{where}: {answer!r}" for (where, answer), score in zip(answers, scores, strict=True) if score != 1.0]
    assert not failures, f"{len(failures)} reference answers do not grade 1.0:\n" + "\n".join(failures)


def test_altered_reference_answers_grade_wrong(grader):
    cases = [(where, answer, wrong) for where, answer in _reference_answers() for wrong in _alterations(answer)]
    predictions = [extract_last_boxed(_respond(wrong)) for _, _, wrong in cases]
    scores = grader.grade(predictions, [answer for _, answer, _ in cases])
    failures = [
        f"{where}: {wrong!r} graded as {answer!r}"
        for (where, answer, wrong), score in zip(cases, scores, strict=True)
        if score
    ]
    assert not failures, f"{len(failures)} altered answers do not grade 0.0:\n" + "\n".join(failures)


# --- hostile answers and failures ---------------------------------------------------------------------

HOSTILE = {
    "deep-nesting": "{" * 100_000 + "1" + "}" * 100_000,
    "nesting-under-length-cap": "{" * 100 + "1" + "}" * 100,
    "power-tower": "10^{10^{10^{10^{10}}}}",
    "huge-factorial": "(10^{100000})!",
    "2MB-answer": "1+" * 1_000_000 + "1",
}


@pytest.mark.parametrize("answer", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answer_scores_zero_in_time_and_grader_keeps_working(grader, answer):
    assert grader.grade(["1"], ["1"]) == [1.0]  # a worker is ready: the clock below times only the answer
    start = time.monotonic()
    assert grader.grade([extract_last_boxed(_respond(answer))], ["1"]) == [0.0]
    assert time.monotonic() - start < grader.timeout + 1.0
    assert grader.grade(["\\frac{1}{2}"], ["0.5"]) == [1.0]


def test_hostile_answers_do_not_hold_up_the_rest_of_a_batch(grader):
    predictions = [HOSTILE["power-tower"], "\\frac12", HOSTILE["huge-factorial"], "3", None]
    assert grader.grade(predictions, ["1", "0.5", "1", "3", "1"]) == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_worker_dying_mid_answer_scores_zero_and_is_replaced(grader):
    assert grader.grade(["1"], ["1"]) == [1.0]
    scores = []
    thread = threading.Thread(target=lambda: scores.extend(grader.grade(["9^{9^{9}}"], ["1"])))
    start = time.monotonic()
    thread.start()
    while not (busy := [worker for worker in grader._workers if worker.item is not None]):
        assert time.monotonic() - start < 2.0, "the answer was never sent to a worker"
        time.sleep(0.01)
    os.kill(busy[0].process.pid, signal.SIGKILL)
    thread.join()
    assert scores == [0.0]
    assert time.monotonic() - start < grader.timeout
    assert grader.grade(["2"], ["2"]) == [1.0]


def test_idle_workers_that_died_are_replaced_without_losing_answers(grader):
    assert grader.grade(["1"], ["1"]) == [1.0]
    for worker in grader._workers:
        if worker.ready:  # killing one that is starting up would be a startup failure, which raises
            worker.process.kill()
            worker.process.join()
    assert grader.grade(["1", "2", "3"], ["1", "2", "4"]) == [1.0, 1.0, 0.0]


def test_works_from_a_thread(grader):
    results = []
    thread = threading.Thread(
        target=lambda: results.extend([grader.grade(["0.5"], ["\\frac{1}{2}"]), grader.equivalent([("2", "3")])])
    )
    thread.start()
    thread.join()
    assert results == [[1.0], [False]]


def test_closed_grader_refuses_work():
    with MathGrader(num_workers=1) as grader:
        assert grader.grade(["1"], ["1"]) == [1.0]
    grader.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        grader.grade(["1"], ["1"])


# --- TRL reward function ------------------------------------------------------------------------------


def test_math_reward_standard_completions():
    completions = [_respond("\\frac{1}{2}"), "\\boxed{3} no, \\boxed{4}", "no answer"]
    assert math_reward(completions, answer=["0.5", "4", "1"], prompts=["p"] * 3) == [1.0, 1.0, 0.0]
    assert math_reward.__name__ == "math_reward"


def test_math_reward_conversational_completions():
    completions = [
        [{"role": "assistant", "content": _respond("2\\sqrt{2}")}],
        [{"role": "assistant", "content": _respond("7")}],
        [{"role": "assistant", "content": [{"type": "text", "text": _respond("7")}]}],
    ]
    assert math_reward(completions, answer=["\\sqrt{8}", "8", "7"]) == [1.0, 0.0, 1.0]
