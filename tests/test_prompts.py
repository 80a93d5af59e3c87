import pytest

from laser_rl.errors import LaserInputError
from laser_rl.prompts import fill_template, format_choices, record_prompts


def test_format_choices_letters_the_options_in_order():
    assert format_choices(["Carbon", "42", "x{problem}"]) == "A. Carbon\nB. 42\nC. x{problem}"
    with pytest.raises(LaserInputError, match="27 choices; at most 26"):
        format_choices(["x"] * 27)


def test_fill_template_shows_the_choices_and_keeps_other_braces():
    template = "{problem}\n{choices}\nPut the letter in \\boxed{}."
    assert fill_template(template, "Which?", ["a", "b"]) == "Which?\nA. a\nB. b\nPut the letter in \\boxed{}."
    # a problem or option holding a placeholder is shown as it is, in one pass
    assert fill_template("{problem} {choices}", "{choices}?", ["{problem}"]) == "{choices}? A. {problem}"
    assert fill_template("{problem}", "Which?", None) == "Which?"  # choices not shown: not needed


@pytest.mark.parametrize("choices", [None, [], "ABCD"])
def test_a_template_with_choices_needs_a_list_of_them(choices):
    with pytest.raises(LaserInputError, match=r"^the prompt template shows \{choices\} but the problem has no list"):
        fill_template("{problem} {choices}", "Which?", choices)


def test_record_prompts_names_the_record_without_choices(tokenizer):
    records = [{"problem": "1+1", "choices": ["2", "3"]}, {"problem": "1+2"}]
    assert record_prompts(tokenizer, records[:1], "{problem}: {choices}", chat=False) == ["1+1: A. 2\nB. 3"]
    assert record_prompts(tokenizer, records, "{problem}", chat=False) == ["1+1", "1+2"]
    with pytest.raises(LaserInputError, match=r"^record 2 of 2: the prompt template shows \{choices\}"):
        record_prompts(tokenizer, records, "{problem}: {choices}", chat=False)
