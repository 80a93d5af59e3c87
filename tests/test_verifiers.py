import math
import sys
import textwrap

import pytest

from laser_rl.errors import LaserInputError
from laser_rl.verifiers import (
    choice_reward,
    exact_answer,
    exact_reward,
    extract_choice,
    normalize_answer,
    resolve_reward_weights,
    resolve_verifier,
)

OPTIONS = ["Carbon", "42", "Oxygen", "none of the above"]

# --- multiple choice ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the answer is $\\boxed{C}$.", "C"),
        ("\\boxed{(c)}", "C"),
        ("\\boxed{\\text{C}}", "C"),
        ("\\boxed{C. Oxygen}", "C"),
        ("first \\boxed{A}, on second thought \\boxed{D}", "D"),
        ("The answer is (C).", "C"),
        ("the correct answer is: **B**", "B"),
        ("The answer is option J", "J"),
        ("The answer is (c)", "C"),
        ("Answer: C", "C"),
        ("**Answer:** E\n", "E"),
        ("I think A is tempting. The answer is B.", "B"),
        ("The answer is A. Hmm, no: the answer is D.", "D"),
        ("Reasoning...\nThus:\n(F)", "F"),
        ("Reasoning...\n**G**\n\n", "G"),
        # traps
        ("The answer is Carbon.", None),  # a letter inside a word
        ("Answer: Copper", None),
        ("the answer is a prime number", None),  # lower case outside parentheses names nothing
        ("The answer is A or C.", None),  # several letters
        ("The answer is (A), (C).", None),
        ("\\boxed{A, C}", None),
        ("\\boxed{Carbon}", None),  # an option's text without the options given
        ("The answer is K.", None),  # past the ten options
        ("Therefore C is correct because B fails", None),  # no phrasing, last line not a lone letter
        ("I am sure.\nI", "I"),  # a lone letter on the last line, even the pronoun's
        ("no answer at all", None),
        ("", None),
        ("\\boxed{A", None),  # an unclosed box is no box: no phrasing either
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{Oxygen}", "C"),  # the box holds the option's text, not its letter
        ("\\boxed{\\text{oxygen}}", "C"),
        ("\\boxed{42}", "B"),
        ("\\boxed{none of the above.}", "D"),
        ("\\boxed{E}", None),  # four options only
        ("The answer is (E).", None),
        ("\\boxed{Nitrogen}", None),
    ],
)
def test_extract_choice_with_the_options_texts(text, expected):
    assert extract_choice(text, choices=OPTIONS) == expected


def test_choice_reward_standard_and_conversational_with_and_without_choices():
    completions = ["\\boxed{B}", [{"role": "assistant", "content": "Answer: c"}], "\\boxed{Carbon}", "I"]
    assert choice_reward(completions, answer=["B", "C", "A", "I"], prompts=["p"] * 4) == [1.0, 0.0, 0.0, 1.0]
    choices = [OPTIONS, OPTIONS, OPTIONS, OPTIONS]
    rewards = choice_reward(completions, answer=["b", "(C)", "A", "A"], choices=choices)
    assert rewards == [1.0, 0.0, 1.0, 0.0]  # "Answer: c" is lower case outside parentheses; I is past D


@pytest.mark.parametrize("gold", ["K", "AB", "", "2"])
def test_choice_reward_refuses_a_gold_answer_that_is_not_an_option_letter(gold):
    with pytest.raises(LaserInputError, match="gold answer .* is not an option letter A-J"):
        choice_reward(["\\boxed{A}"], answer=[gold])


# --- exact match ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Paris.  ", "paris"),
        ("$\\text{New   York}$", "new york"),
        ("ＡＢＣ", "abc"),  # NFKC: full-width letters
        ("Straße", "strasse"),  # case-folded
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_answer_is_the_last_box_else_the_whole_response():
    assert exact_answer("It is \\boxed{Rome}, not \\boxed{ PARIS }") == "paris"
    assert exact_answer("  Paris\n") == "paris"


def test_exact_reward():
    completions = ["so \\boxed{Paris.}", "Paris", "The capital is Paris", [{"role": "assistant", "content": "paris"}]]
    assert exact_reward(completions, answer=["paris", "Paris", "Paris", " PARIS"]) == [1.0, 1.0, 0.0, 1.0]


# --- the registry -----------------------------------------------------------------------------------------


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module `my_verifiers` in the current directory, as a user writes one."""
    (tmp_path / "my_verifiers.py").write_text(
        textwrap.dedent("""\
            import math

            NOT_A_FUNCTION = 3

            def length_reward(completions, answer, **kwargs):
                return [min(len(c) / 10, 1.0) for c in completions]

            def unsure(completions, answer, **kwargs):
                return [None, math.nan, 1]

            def too_big(completions, answer, **kwargs):
                return [1.5 for _ in completions]

            def a_word(completions, answer, **kwargs):
                return ["yes" for _ in completions]

            def too_few(completions, answer, **kwargs):
                return [1.0]

            class Judge:
                @staticmethod
                def verdict(completions, answer, **kwargs):
                    return [0.25 for _ in completions]
        """)
    )
    (tmp_path / "broken_verifiers.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.chdir(tmp_path)
    for name in ("my_verifiers", "broken_verifiers"):  # another test's module of the same name may be loaded
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("my_verifiers", "broken_verifiers"):
        sys.modules.pop(name, None)


def test_builtin_names_resolve_to_checked_functions_with_their_names():
    for name in ("math", "choice", "exact"):
        assert resolve_verifier(name, "--reward").__name__ == f"{name}_reward"
    assert resolve_verifier("exact", "--reward")(["\\boxed{x}"], answer=["x"]) == [1.0]


def test_an_import_path_resolves_from_the_current_directory(user_module):
    verifier = resolve_verifier("my_verifiers:length_reward", "--reward")
    assert verifier.__name__ == "length_reward"
    assert verifier(["abcde", "x" * 30], answer=["", ""]) == [0.5, 1.0]
    assert resolve_verifier("my_verifiers:Judge.verdict", "--reward")(["a"], answer=["a"]) == [0.25]


def test_cannot_judge_is_none_whether_returned_as_none_or_nan(user_module):
    assert resolve_verifier("my_verifiers:unsure", "--reward")(["a", "b", "c"], answer=["a"] * 3) == [None, None, 1.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "nonsense",
            r"^--reward nonsense: no such verifier \(built in: choice, exact, judge, math; or module:function\)$",
        ),
        ("my_verifiers:", "no such verifier"),
        ("no_such_module:f", r"^--reward no_such_module:f: cannot import no_such_module \(ModuleNotFoundError"),
        ("broken_verifiers:f", r"cannot import broken_verifiers \(ModuleNotFoundError: No module named 'not_a_mod"),
        ("my_verifiers:missing", r"^--reward my_verifiers:missing: my_verifiers has no attribute missing$"),
        ("my_verifiers:NOT_A_FUNCTION", r"NOT_A_FUNCTION is a int, not a function$"),
    ],
)
def test_a_verifier_that_cannot_be_used_is_one_line_naming_it(user_module, spec, message):
    with pytest.raises(LaserInputError, match=message) as error:
        resolve_verifier(spec, "--reward")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("too_big", r"^verifier my_verifiers:too_big: reward 1.5 for completion 0 is not a number in \[0, 1\]"),
        ("a_word", r"reward 'yes' for completion 0 is not a number"),
        ("too_few", r"^verifier my_verifiers:too_few: returned 1 rewards for 2 completions$"),
    ],
)
def test_rewards_outside_the_contract_are_an_error_not_clipped(user_module, function, message):
    verifier = resolve_verifier(f"my_verifiers:{function}", "--reward")
    with pytest.raises(LaserInputError, match=message):
        verifier(["a", "b"], answer=["a", "b"])


def test_reward_weights():
    assert resolve_reward_weights(1, None) == [1.0]
    assert resolve_reward_weights(4, None) == [0.25] * 4
    assert resolve_reward_weights(2, [0.7, 0.3]) == [0.7, 0.3]
    with pytest.raises(LaserInputError, match=r"^reward_weights: 1 weights for 2 verifiers$"):
        resolve_reward_weights(2, [1.0])
    for weights in ([1.0, 1.0], [1.5, -0.5]):
        with pytest.raises(LaserInputError, match="must be non-negative and sum to 1"):
            resolve_reward_weights(2, weights)
    assert math.isclose(sum(resolve_reward_weights(3, None)), 1.0)


def test_choice_reads_every_written_phrasing_as_meant_where_mmlu_pros_cascade_misreads_some():
    from benchmarks.choice_extraction import mmlu_pro_cascade, phrasings

    cases = phrasings()
    assert len(cases) >= 150
    assert [extract_choice(text) for _, text, _ in cases] == [meant for _, _, meant in cases]
    misread = {kind for kind, text, meant in cases if mmlu_pro_cascade(text) != meant}
    assert {"corrected", "pronoun I", "several letters", "no option"} <= misread
