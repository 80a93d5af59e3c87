"""Training data: problems with reference answers, from a local file or the Hub, as TRL prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, load_dataset

from laser_rl.errors import LaserInputError
from laser_rl.prompts import fill_template

_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass
class DataArguments:
    """Where the problems come from and how they become prompts."""

    dataset: str = field(
        default=None,
        metadata={"help": "A local .jsonl/.json/.parquet file or a Hugging Face Hub dataset name."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    problem_column: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_column: str = field(default="answer", metadata={"help": "Column holding the reference answer."})
    choices_column: str = field(
        default="choices",
        metadata={
            "help": "Column holding a multiple-choice problem's options (a list of texts), if the data has one: the "
            "prompt template shows them at {choices}, and the verifiers receive them as `choices`."
        },
    )
    reward: list[str] = field(
        default_factory=lambda: ["math"],
        metadata={
            "help": "Verifier(s) giving the reward r_v: math, choice, exact, judge (an LLM judge: see the judge_* "
            "fields), or module:function (see "
            "laser_rl.verifiers). Several are summed with reward_weights (non-negative, summing to 1; equal if unset)."
        },
    )
    max_samples: int | None = field(default=None, metadata={"help": "Keep only the first N problems."})


def check_local_dataset(args: DataArguments) -> None:
    """Raises `LaserInputError` when no dataset is named, or a local file it names is missing or empty."""
    if not args.dataset:
        raise LaserInputError("dataset: no training data given (a .jsonl/.parquet file or a Hub dataset name)")
    path = Path(args.dataset)
    if path.suffix in _LOCAL_FORMATS and not path.is_file():
        raise LaserInputError(f"{path}: no such file")
    if path.suffix in _LOCAL_FORMATS and path.stat().st_size == 0:
        raise LaserInputError(f"{path}: no problems (empty file)")


def load_problems(args: DataArguments, template: str, chat: bool) -> Dataset:
    """A dataset with TRL's `prompt` column, `answer` and `problem` columns for the reward functions, and a
    `choices` column where the data has `args.choices_column`.

    Prompts are `template` filled with the problem, as one user message when `chat` (TRL then applies
    the chat template as `laser_rl.prompts.render_prompts` does); see `laser_rl.prompts.prompt_settings`
    for the defaults of both.

    Raises `LaserInputError` naming the file or dataset when it is missing, empty, or lacks a column, and
    the row when the template shows `{choices}` and the row has none.
    """
    check_local_dataset(args)
    path = Path(args.dataset)
    try:
        if path.suffix in _LOCAL_FORMATS:
            data = load_dataset(_LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        else:
            data = load_dataset(args.dataset, args.dataset_config, split=args.dataset_split)
    except LaserInputError:
        raise
    except Exception as error:  # datasets raises many types; the user needs the source and the reason
        raise LaserInputError(f"{args.dataset}: cannot be loaded ({type(error).__name__}: {error})") from error
    required = [args.problem_column, args.answer_column]
    if "{choices}" in template:
        required.append(args.choices_column)
    for column in required:
        if column not in data.column_names:
            raise LaserInputError(f"{args.dataset}: no column '{column}' (columns: {', '.join(data.column_names)})")
    if len(data) == 0:
        raise LaserInputError(f"{args.dataset}: no problems")
    if args.max_samples is not None:
        data = data.select(range(min(args.max_samples, len(data))))

    has_choices = args.choices_column in data.column_names

    def to_prompt(row: dict, index: int) -> dict:
        choices = row[args.choices_column] if has_choices else None
        try:
            text = fill_template(template, str(row[args.problem_column]), choices)
        except LaserInputError as error:
            raise LaserInputError(f"{args.dataset}: row {index}: {error}") from None
        prompt = {
            "prompt": [{"role": "user", "content": text}] if chat else text,
            "answer": str(row[args.answer_column]),
            "problem": str(row[args.problem_column]),
        }
        return prompt | ({"choices": choices} if has_choices else {})

    return data.map(to_prompt, with_indices=True, remove_columns=data.column_names)
