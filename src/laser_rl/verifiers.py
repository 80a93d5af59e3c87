"""Verifiers: the reward functions that give r_v, chosen by name or import path, for training and grading.

The contract, for the built-in verifiers and for your own: a verifier is a TRL reward function

    f(completions: list, answer: list, **kwargs) -> list[float | None]

- `completions`: one per solution, a string (standard prompts) or a conversation whose last message is the
  model's (conversational prompts); `answer`: the gold answers, one per completion; `kwargs`: every other
  column of the dataset, one value per completion (e.g. `choices`), plus what TRL adds (`prompts`,
  `completion_ids`, `trainer_state`, ...). Accept `**kwargs` and ignore what you do not use.
- It returns one reward per completion, in [0, 1] (1: correct, 0: wrong; a probability in between), or
  None / NaN where it cannot judge. A value outside [0, 1], or not a number, is an error
  (`LaserInputError` naming the verifier and the value), never clipped.
- What TRL 1.16's GRPOTrainer does with "cannot judge": it turns None into NaN, leaves NaN out of that
  function's logged mean, and a completion that every function leaves unjudged gets advantage 0 (it
  moves nothing); LaSeR leaves it out of the self-reward loss too. With several functions, one that
  judges nothing adds 0 to the weighted sum of the others (TRL's `nansum`).

Names: `math` (`grading.math_reward`, math-verify under a time limit), `choice` (`choice_reward`, an
option letter), `exact` (`exact_reward`, normalised string equality), `judge` (an LLM judge over an
OpenAI-compatible endpoint, see `laser_rl.llm_judge`), or `module:function`, a reward
function importable from the current directory or the installed packages (`module:Class.method` works
too). Several verifiers are summed with weights (TRL's `reward_weights`), which must be non-negative
and sum to 1 so that r_v stays in [0, 1]; unset, they are equal.
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import re
import string
import sys
import unicodedata
from collections.abc import Callable, Sequence
from functools import wraps

from laser_rl.errors import LaserInputError
from laser_rl.grading import completion_text, extract_last_boxed, math_reward
from laser_rl.llm_judge import JudgeArguments, build_judge

RewardFunction = Callable[..., list]

# MMLU-Pro's ten options; a `choices` field, where present, says how many a problem has.
DEFAULT_NUM_OPTIONS = 10

# An option letter as a token: "(c)" or "C", not the first letter of a word ("Carbon") nor one of "C++".
_LETTER = r"(?:\(([A-Za-z])\)|(?<![\w\\])([A-Z])(?![\w'+\-]))"
_MORE_LETTERS = rf"(?P<more>(?:\s*(?:,|/|&|\bor\b|\band\b)\s*{_LETTER})+)?"
# "the answer is (C)", "The correct answer is: **C**", "Answer: C", "answer is option C".
# Only the words ignore case: "the answer is a prime" names no option.
_PHRASE = re.compile(rf"(?i:answer\s*(?:is|:))\s*[:*]*\s*(?i:option\s+)?\**{_LETTER}\**{_MORE_LETTERS}")
# A last line that is only a letter: "C", "(C)", "**C**", "C.".
_LONE_LETTER = re.compile(rf"^[\s*]*{_LETTER}[.)]?[\s*]*$")
# A box holding a letter with or without the option's text: "C", "(c)", "C. 42", "(C) 42", "\text{C}".
_BOXED_LETTER = re.compile(r"^\(?([A-Za-z])(?:\)|[.:]\s|\)\s|$)")
# Option letters a sentence names in other words ("the correct option is C", "leaving (C)", "So C."): a
# parenthesised letter, or a capital standing alone that is not the pronoun I nor a sentence's first word "A"
# before a word (the article), nor inside LaTeX braces.
_NAMED_LETTER = re.compile(r"\(([A-Za-z])\)|(?<![\w\\{])((?!I\b)(?!(?<!.)A\s+[a-z])[A-Z])(?![\w'+\-}])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm)\{(.*)\}$", re.DOTALL)


def _letters(match: re.Match) -> set[str]:
    """The upper-cased letters of every `_LETTER` group of a match."""
    return {group.upper() for group in match.groups() if group is not None and len(group) == 1}


def _unwrap(text: str) -> str:
    """Text without surrounding whitespace, `$`, and a `\\text{...}`-like wrapper."""
    text = text.strip().strip("$").strip()
    wrapped = _TEXT_WRAPPER.match(text)
    return wrapped[1].strip() if wrapped else text


def normalize_answer(text: str) -> str:
    """The form `exact` compares: Unicode NFKC, case-folded, surrounding whitespace, `$` and a
    `\\text{}` wrapper removed, a trailing period dropped, runs of whitespace made one space."""
    text = _unwrap(unicodedata.normalize("NFKC", text)).casefold()
    return " ".join(text.removesuffix(".").split())


def option_letters(num_options: int) -> str:
    """ "ABCD..." for `num_options` options (1 to 26)."""
    if not 1 <= num_options <= 26:
        raise LaserInputError(f"choice: {num_options} options; between 1 and 26 are supported")
    return string.ascii_uppercase[:num_options]


def extract_choice(
    text: str, num_options: int = DEFAULT_NUM_OPTIONS, choices: Sequence[str] | None = None
) -> str | None:
    """The option letter a response gives as its answer, upper case, or None.

    The last `\\boxed{}` decides when there is one: a letter ("C", "(c)", "C. text"), or the text of one
    of `choices` (compared with `normalize_answer`). Without a box, the last of the usual phrasings
    ("the answer is (C)", "Answer: C"), else a last line holding only a letter, else the letter the last
    sentence naming any names ("the correct option is C", "leaving (C)"; not the pronoun I nor the article
    A; docs/verifiers.md compares this with MMLU-Pro's own reading). Lower case counts
    in a box or in parentheses only ("the answer is a prime" names no option). Several letters
    ("A or C", "\\boxed{A, C}") and letters past the options give None.

    Args:
        text: the response.
        num_options: how many options (A, B, ...); `len(choices)` when `choices` is given.
        choices: the options' texts, in order.
    """
    letters = option_letters(len(choices) if choices is not None else num_options)
    boxed = extract_last_boxed(text)
    if boxed is not None:
        return _boxed_choice(_unwrap(boxed), letters, choices)
    candidates: set[str] = set()
    phrases = list(_PHRASE.finditer(text))
    if phrases:
        candidates = _letters(phrases[-1])
    else:
        lines = text.strip().splitlines()
        lone = _LONE_LETTER.match(lines[-1]) if lines else None
        candidates = _letters(lone) if lone else _last_named_letters(text)
    return candidates.pop() if len(candidates) == 1 and candidates <= set(letters) else None


def _last_named_letters(text: str) -> set[str]:
    """The option letters of the last sentence that names any (MMLU-Pro's last standalone letter, without its
    misreadings: the pronoun I, the article A, a letter of another sentence than the choice's)."""
    for sentence in reversed(_SENTENCE_END.split(text.strip())):
        found = {group.upper() for match in _NAMED_LETTER.finditer(sentence) for group in match.groups() if group}
        if found:
            return found
    return set()


def _boxed_choice(boxed: str, letters: str, choices: Sequence[str] | None) -> str | None:
    """The option letter of a box's content: its option text if it is one, else its letter."""
    if choices is not None:
        texts = [normalize_answer(str(choice)) for choice in choices]
        if normalize_answer(boxed) in texts:
            return letters[texts.index(normalize_answer(boxed))]
    letter = _BOXED_LETTER.match(boxed)
    return letter[1].upper() if letter and letter[1].upper() in letters else None


def gold_letter(gold: object, letters: str) -> str:
    """The gold option letter: "C", "c" or "(C)"; anything else is a `LaserInputError`."""
    letter = str(gold).strip().strip("()").upper()
    if len(letter) != 1 or letter not in letters:
        raise LaserInputError(f"choice: gold answer {gold!r} is not an option letter {letters[0]}-{letters[-1]}")
    return letter


def choice_reward(completions: list, answer: list, choices: list | None = None, **kwargs) -> list[float]:
    """Multiple-choice verifier: 1.0 where `extract_choice` finds the gold option letter, else 0.0.

    `answer` holds letters ("C"); `choices`, when the dataset has that column, the options' texts (their
    count, and a box holding an option's text instead of its letter); else options A-J (MMLU-Pro).
    """
    rewards = []
    for index, (completion, gold) in enumerate(zip(completions, answer, strict=True)):
        options = choices[index] if choices is not None else None
        letters = option_letters(len(options) if options is not None else DEFAULT_NUM_OPTIONS)
        predicted = extract_choice(completion_text(completion), len(letters), options)
        rewards.append(float(predicted == gold_letter(gold, letters)))
    return rewards


def exact_answer(text: str) -> str:
    """The answer `exact` compares: the last `\\boxed{}`'s content, else the whole response, normalised."""
    boxed = extract_last_boxed(text)
    return normalize_answer(text if boxed is None else boxed)


def exact_reward(completions: list, answer: list, **kwargs) -> list[float]:
    """Exact-match verifier: 1.0 where `exact_answer` of the completion equals the normalised gold answer."""
    return [
        float(exact_answer(completion_text(completion)) == normalize_answer(str(gold)))
        for completion, gold in zip(completions, answer, strict=True)
    ]


BUILTIN = {"math": math_reward, "choice": choice_reward, "exact": exact_reward}


def predicted_answer(spec: str, text: str, choices: Sequence[str] | None = None) -> str | None:
    """The answer verifier `spec` reads in a response, for `laser grade`'s `pred_answers`: the option letter
    for `choice`, the normalised answer for `exact`, else the last `\\boxed{}`'s content (None if none)."""
    if spec == "choice":
        return extract_choice(text, choices=choices)
    if spec == "exact":
        return exact_answer(text)
    return extract_last_boxed(text)


def check_rewards(name: str, rewards: object, count: int) -> list[float | None]:
    """`rewards` as a list of `count` floats in [0, 1] or None (NaN becomes None); else a `LaserInputError`."""
    if not isinstance(rewards, Sequence) or isinstance(rewards, str) or len(rewards) != count:
        shown = f"{len(rewards)} rewards" if isinstance(rewards, Sequence) else type(rewards).__name__
        raise LaserInputError(f"verifier {name}: returned {shown} for {count} completions")
    checked: list[float | None] = []
    for index, reward in enumerate(rewards):
        if reward is None or (isinstance(reward, numbers.Real) and math.isnan(reward)):
            checked.append(None)
        elif isinstance(reward, numbers.Real) and 0.0 <= reward <= 1.0:
            checked.append(float(reward))
        else:
            raise LaserInputError(
                f"verifier {name}: reward {reward!r} for completion {index} is not a number in [0, 1] (or None)"
            )
    return checked


def checked_verifier(name: str, function: RewardFunction) -> RewardFunction:
    """`function`, whose rewards are checked by `check_rewards`; it keeps `function`'s `__name__` (TRL logs
    `rewards/<__name__>`)."""

    @wraps(function)
    def verifier(completions: list, *args, **kwargs) -> list[float | None]:
        return check_rewards(name, function(completions, *args, **kwargs), len(completions))

    return verifier


def resolve_verifier(spec: str, option: str, judge: JudgeArguments | None = None) -> RewardFunction:
    """The checked verifier that `spec` names: a name of `BUILTIN`, `judge` (built from the settings `judge`)
    or `module:function`.

    The current directory is searched for `module` first, as `python -m` does. Raises `LaserInputError`
    naming `option` and `spec` for an unknown name, a module that does not import, a missing attribute
    or one that is not callable.
    """
    if spec in BUILTIN:
        return checked_verifier(spec, BUILTIN[spec])
    if spec == "judge":
        return checked_verifier(spec, build_judge(judge or JudgeArguments(), f"{option} judge"))
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        known = ", ".join(sorted([*BUILTIN, "judge"]))
        raise LaserInputError(f"{option} {spec}: no such verifier (built in: {known}; or module:function)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target = importlib.import_module(module_name)
    except Exception as error:  # the user's module may fail in any way while importing
        raise LaserInputError(
            f"{option} {spec}: cannot import {module_name} ({type(error).__name__}: {error})"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise LaserInputError(f"{option} {spec}: {module_name} has no attribute {attribute}")
        target = getattr(target, part)
    if not callable(target):
        raise LaserInputError(f"{option} {spec}: {attribute} is a {type(target).__name__}, not a function")
    return checked_verifier(spec, target)


def resolve_reward_weights(count: int, weights: Sequence[float] | None) -> list[float]:
    """The weights of `count` verifiers: equal when unset, else `weights` if there is one per verifier,
    none is negative and they sum to 1 (so that the weighted r_v stays in [0, 1])."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise LaserInputError(f"reward_weights: {len(weights)} weights for {count} verifiers")
    if any(weight < 0 for weight in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-6):
        raise LaserInputError(f"reward_weights: {list(weights)} must be non-negative and sum to 1")
    return [float(weight) for weight in weights]
