"""One way to turn problems into prompts, for training and for generation alike.

A prompt is the template with `{problem}` filled in, sent as one user turn through the tokenizer's
chat template when `chat` is on. Each setting comes from the flag or field when given, else from
the model folder's laser_config.json (what the model was trained or calibrated with), else from
the defaults below: the authors' evaluation prompt, and chat on when the tokenizer has a template.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from laser_rl.errors import LaserInputError

DEFAULT_PROMPT_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{}."


def prompt_settings(
    tokenizer: PreTrainedTokenizerBase, model_settings: dict, template: str | None, chat: bool | None
) -> tuple[str, bool]:
    """(template, chat): the given values, else the model folder's, else the defaults."""
    template = template or model_settings.get("prompt_template") or DEFAULT_PROMPT_TEMPLATE
    if "{problem}" not in template:
        raise LaserInputError(f"prompt_template must contain {{problem}}, got {template!r}")
    if chat is None:
        chat = model_settings.get("chat", tokenizer.chat_template is not None)
    if chat and tokenizer.chat_template is None:
        raise LaserInputError("chat is on but the tokenizer has no chat template")
    return template, chat


def fill_template(template: str, problem: str) -> str:
    """The user turn: `{problem}` replaced, other braces (as in `\\boxed{}`) kept."""
    return template.replace("{problem}", problem)


def render_prompts(
    tokenizer: PreTrainedTokenizerBase, problems: Sequence[str], template: str, chat: bool
) -> list[str]:
    """The text fed to the model for each problem, special tokens included: the filled template,
    wrapped as a user turn with the assistant's generation prompt when `chat` (as TRL renders a
    conversational prompt, and as the authors' evaluation does)."""
    if "{problem}" not in template:
        raise LaserInputError("--prompt-template must contain {problem}")
    texts = [fill_template(template, problem) for problem in problems]
    if not chat:
        return texts
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        for text in texts
    ]
