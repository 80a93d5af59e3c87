"""`laser train --config recipe.yaml [--field value ...]`: LaSeR training, runnable under accelerate.

Every field of `LaserConfig` (hence of TRL's `GRPOConfig`), of `DataArguments`, of TRL's `ModelConfig`
and of `JudgeArguments` can be set in the YAML file or as a flag (`--reward_token` or `--reward-token`);
flags win. Run again after an interruption, the same command continues from the last complete
checkpoint in output_dir (`--resume_from_checkpoint false` starts afresh; `true` or a path name one).
The model may be a folder, a `.gguf` file, a name from `laser models list` or a Hub id. `--reward`
picks the verifier(s), `math` by default (see `laser_rl.verifiers`); `--reward judge` asks an LLM judge
(`--judge_url`, `--judge_model`, ...; see `laser_rl.llm_judge`), caching its judgements in
output_dir/judge_cache.jsonl. What the recipe leaves unset among the reward token, c_ref and the prompt
settings comes from the model folder's laser_config.json (`laser calibrate --save`), and the saved
model and every checkpoint carry all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

from laser_rl.errors import LaserInputError

# Deprecation notices of the libraries underneath, about settings a `laser train` user does not choose.
_QUIET = [
    (FutureWarning, r"trl|transformers|accelerate|torch"),
    (UserWarning, r"torch\.utils\.checkpoint|None of the inputs have requires_grad"),
]


def add_parser(subparsers) -> None:
    subparsers.add_parser(
        "train",
        help="train a model with LaSeR (every LaserConfig/GRPOConfig field is a flag or a YAML key)",
        add_help=False,
    )


def run(args: argparse.Namespace) -> None:
    for category, module in _QUIET:
        warnings.filterwarnings("ignore", category=category, module=module)
    _check_user_inputs(args.train_argv)
    from transformers import AutoTokenizer
    from trl import get_peft_config

    from laser_rl.data import load_problems
    from laser_rl.model_settings import ModelSettings
    from laser_rl.models import resolve_model
    from laser_rl.prompts import prompt_settings, render_prompts
    from laser_rl.tokens import check_reward_token_unused
    from laser_rl.trainer import LaserGRPOTrainer
    from laser_rl.verifiers import resolve_reward_weights, resolve_verifier

    argv = _cpu_default(args.train_argv)
    try:
        data_args, config, model_args, judge_args = train_parser().parse_args_and_config(argv)
    except (ValueError, FileNotFoundError) as error:  # unknown YAML keys, bad values, missing config file
        raise LaserInputError(str(error).splitlines()[0]) from error
    if not model_args.model_name_or_path:
        raise LaserInputError("model_name_or_path: no model given")
    judge_cache = judge_args.judge_cache or str(Path(config.output_dir, "judge_cache.jsonl"))
    judge_args = dataclasses.replace(judge_args, judge_cache=judge_cache)
    verifiers = [resolve_verifier(spec, "--reward", judge_args) for spec in data_args.reward]
    config.reward_weights = resolve_reward_weights(len(verifiers), config.reward_weights)
    checkpoint = _checkpoint_to_resume(config.resume_from_checkpoint, config.output_dir)
    if checkpoint is not None and 0 < config.max_steps <= _global_step(checkpoint):
        # transformers would train one step past max_steps from there; the run is done
        print(
            f"laser train: {checkpoint} is at max_steps ({config.max_steps}); nothing left to train", file=sys.stderr
        )
        return
    model = resolve_model(model_args.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, revision=model_args.model_revision)
    except (OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        where = "a folder without a tokenizer" if Path(model).is_dir() else "no such folder, nor loadable from the Hub"
        raise LaserInputError(f"model_name_or_path {model_args.model_name_or_path}: {where} ({reason})") from None
    template, chat = prompt_settings(tokenizer, ModelSettings.read(model), config.prompt_template, config.chat)
    config.prompt_template, config.chat = template, chat  # saved with the model
    config.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(config.model_init_kwargs or {}),
    }
    dataset = load_problems(data_args, template, chat)
    trainer = LaserGRPOTrainer(
        model=model,
        reward_funcs=verifiers,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    # z_c in a prompt comes from the filled template or from the chat wrapper: the wrapper is checked once, the
    # filled texts in batches (not one chat rendering per row: a 100k-row file starts in seconds)
    check_reward_token_unused(tokenizer, trainer.reward_token_id, render_prompts(tokenizer, [""], "{problem}", chat),
                              "the chat template")  # fmt: skip
    texts = dataset.select_columns(["prompt", "answer"]).to_dict()
    prompts = [p if isinstance(p, str) else p[-1]["content"] for p in texts["prompt"]]
    check_reward_token_unused(tokenizer, trainer.reward_token_id, prompts, data_args.dataset)
    check_reward_token_unused(tokenizer, trainer.reward_token_id, texts["answer"], data_args.dataset)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(config.output_dir)
    if trainer.accelerator.is_main_process:
        print(f"laser train: model saved to {config.output_dir}", file=sys.stderr)


def _check_user_inputs(argv: list[str]) -> None:
    """The user's own inputs (the data file, the verifier names) checked before the library's settings, whose
    errors would otherwise come first."""
    from trl import TrlParser

    from laser_rl.data import DataArguments, check_local_dataset
    from laser_rl.llm_judge import JudgeArguments
    from laser_rl.verifiers import resolve_verifier

    try:
        data_args, _, _ = TrlParser((DataArguments, JudgeArguments)).parse_args_and_config(
            argv, return_remaining_strings=True
        )
    except (ValueError, FileNotFoundError, SystemExit):  # the full parse words these
        return
    check_local_dataset(data_args)
    for spec in data_args.reward:
        if spec != "judge":  # the judge's settings are checked with the rest
            resolve_verifier(spec, "--reward")


def _cpu_default(argv: list[str]) -> list[str]:
    """`argv`, asking for float32 on the CPU when no GPU is visible and neither the flags nor the recipe
    choose a precision or device (transformers would stop on its bf16 default)."""
    import torch
    import yaml

    if torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return argv
    chosen = {arg.lstrip("-").split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        try:
            recipe = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):  # the full parse words these
            recipe = None
        chosen |= set(recipe) if isinstance(recipe, dict) else set()
    if chosen & {"bf16", "fp16", "use_cpu"}:
        return argv
    print("laser train: no GPU visible: training in float32 on the CPU (--use_cpu true --bf16 false)", file=sys.stderr)
    return ["--use_cpu", "true", "--bf16", "false", *argv]


def train_parser():
    """The `TrlParser` of `laser train`'s recipe and flags: DataArguments, LaserConfig, TRL's ModelConfig and
    JudgeArguments, parsed in that order."""
    from trl import ModelConfig, TrlParser

    from laser_rl.config import LaserConfig
    from laser_rl.data import DataArguments
    from laser_rl.llm_judge import JudgeArguments

    return TrlParser((DataArguments, LaserConfig, ModelConfig, JudgeArguments), prog="laser train")


def _checkpoint_to_resume(setting: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from: unset, output_dir's last complete one if any; "true", the same or
    an error if there is none; "false", none; else the path given."""
    from laser_rl.trainer import last_complete_checkpoint

    if setting is not None and setting.lower() == "false":
        return None
    if setting is not None and setting.lower() != "true":
        if not Path(setting, "trainer_state.json").is_file():
            raise LaserInputError(f"resume_from_checkpoint: {setting} is not a checkpoint folder")
        return setting
    checkpoint = last_complete_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if checkpoint is None and setting is not None:
        raise LaserInputError(f"resume_from_checkpoint: no complete checkpoint in {output_dir}")
    if checkpoint is not None:
        print(
            f"laser train: resuming from {checkpoint} (--resume_from_checkpoint false starts afresh)", file=sys.stderr
        )
    return checkpoint


def _global_step(checkpoint: str) -> int:
    return json.loads(Path(checkpoint, "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
