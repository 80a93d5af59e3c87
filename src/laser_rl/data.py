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
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt text in which {problem} is replaced by the problem; other braces stay. Default: the model "
            "folder's laser_config.json, else the step-by-step \\boxed{} prompt (laser_rl.prompts)."
        },
    )
    chat: bool | None = field(
        default=None,
        metadata={
            "help": "Send prompts as chat messages, so that TRL applies the tokenizer's chat template. Default: the "
            "model folder's laser_config.json, else on when the tokenizer has a chat template."
        },
    )
    max_samples: int | None = field(default=None, metadata={"help": "Keep only the first N problems."})


def load_problems(args: DataArguments, template: str, chat: bool) -> Dataset:
    """A dataset with TRL's `prompt` column and an `answer` column for the reward function.

    Prompts are `template` filled with the problem, as one user message when `chat` (TRL then applies
    the chat template as `laser_rl.prompts.render_prompts` does); see `laser_rl.prompts.prompt_settings`
    for the defaults of both.

    Raises `LaserInputError` naming the file or dataset when it is missing, empty, or lacks a column.
    """
    if not args.dataset:
        raise LaserInputError("dataset: no training data given (a .jsonl/.parquet file or a Hub dataset name)")
    path = Path(args.dataset)
    try:
        if path.suffix in _LOCAL_FORMATS:
            if not path.is_file():
                raise LaserInputError(f"{path}: no such file")
            if path.stat().st_size == 0:
                raise LaserInputError(f"{path}: no problems (empty file)")
            data = load_dataset(_LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        else:
            data = load_dataset(args.dataset, args.dataset_config, split=args.dataset_split)
    except LaserInputError:
        raise
    except Exception as error:  # datasets raises many types; the user needs the source and the reason
        raise LaserInputError(f"{args.dataset}: cannot be loaded ({type(error).__name__}: {error})") from error
    for column in (args.problem_column, args.answer_column):
        if column not in data.column_names:
            raise LaserInputError(f"{args.dataset}: no column '{column}' (columns: {', '.join(data.column_names)})")
    if len(data) == 0:
        raise LaserInputError(f"{args.dataset}: no problems")
    if args.max_samples is not None:
        data = data.select(range(min(args.max_samples, len(data))))

    def to_prompt(row: dict) -> dict:
        text = fill_template(template, str(row[args.problem_column]))
        return {
            "prompt": [{"role": "user", "content": text}] if chat else text,
            "answer": str(row[args.answer_column]),
        }

    return data.map(to_prompt, remove_columns=data.column_names)
