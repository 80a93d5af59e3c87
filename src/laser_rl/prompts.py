"""One way to turn problems into prompts, for training and for generation alike.

A prompt is the template with `{problem}` filled in (and `{choices}`, for multiple choice), sent as one
user turn through the tokenizer's chat template when `chat` is on. Each setting comes from the flag or
field when given, else from the model folder's laser_config.json (what the model was trained or
calibrated with), else from the defaults below: the authors' evaluation prompt, and chat on when the
tokenizer has a template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from laser_rl.errors import LaserInputError
from laser_rl.model_settings import ModelSettings

_PLACEHOLDER = re.compile(r"\{(problem|choices)\}")

DEFAULT_PROMPT_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."


def prompt_settings(
    tokenizer: PreTrainedTokenizerBase, stored: ModelSettings, template: str | None, chat: bool | None
) -> tuple[str, bool]:
    """(template, chat): the given values, else the model folder's (`stored`), else the defaults."""
    template = template or stored.prompt_template or DEFAULT_PROMPT_TEMPLATE
    if "{problem}" not in template:
        raise LaserInputError(f"prompt_template must contain {{problem}}, got {template!r}")
    if chat is None:
        chat = stored.chat if stored.chat is not None else tokenizer.chat_template is not None
    if chat and tokenizer.chat_template is None:
        raise LaserInputError("chat is on but the tokenizer has no chat template")
    return template, chat


def format_choices(choices: Sequence[str]) -> str:
    """The options as the prompt shows them: "A. first\\nB. second\\n..." (at most 26)."""
    if len(choices) > 26:
        raise LaserInputError(f"{len(choices)} choices; at most 26 (A-Z) are supported")
    return "\n".join(f"{chr(ord('A') + index)}. {choice}" for index, choice in enumerate(choices))


def fill_template(template: str, problem: str, choices: Sequence[str] | None = None) -> str:
    """The user turn: `{problem}` replaced, `{choices}` by `format_choices(choices)`, other braces (as in
    `\\boxed{}`) kept. A template with `{choices}` and a problem without any is a `LaserInputError`."""
    values = {"problem": problem}
    if "{choices}" in template:
        if not choices or isinstance(choices, str):
            raise LaserInputError("the prompt template shows {choices} but the problem has no list of choices")
        values["choices"] = format_choices([str(choice) for choice in choices])
    # One pass, so that a problem or an option holding "{choices}" or "{problem}" is shown as it is.
    return _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), template)


def render_prompts(
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[str],
    template: str,
    chat: bool,
    choices: Sequence[Sequence[str] | None] | None = None,
) -> list[str]:
    """The text fed to the model for each problem, special tokens included: the filled template,
    wrapped as a user turn with the assistant's generation prompt when `chat` (as TRL renders a
    conversational prompt, and as the authors' evaluation does). `choices`: each problem's options,
    for a template with `{choices}`; a problem without them is an error naming its record."""
    if "{problem}" not in template:
        raise LaserInputError("must contain {problem}", "prompt_template")
    choices = [None] * len(problems) if choices is None else choices
    texts = []
    for index, (problem, options) in enumerate(zip(problems, choices, strict=True)):
        try:
            texts.append(fill_template(template, problem, options))
        except LaserInputError as error:
            raise LaserInputError(f"record {index + 1} of {len(problems)}: {error}") from None
    if not chat:
        return texts
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        for text in texts
    ]


def record_prompts(
    tokenizer: PreTrainedTokenizerBase, records: Sequence[dict], template: str, chat: bool
) -> list[str]:
    """`render_prompts` of records: their `problem`, and their `choices` where they have them."""
    problems = [record["problem"] for record in records]
    return render_prompts(tokenizer, problems, template, chat, [record.get("choices") for record in records])
