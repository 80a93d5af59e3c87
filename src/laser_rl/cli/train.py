"""`laser train --config recipe.yaml [--field value ...]`: LaSeR training, runnable under accelerate.

Every field of `LaserConfig` (hence of TRL's `GRPOConfig`), of `DataArguments` and of TRL's
`ModelConfig` can be set in the YAML file or as a flag; flags win.
"""

from __future__ import annotations

import argparse
import sys

from laser_rl.errors import LaserInputError


def add_parser(subparsers) -> None:
    subparsers.add_parser(
        "train",
        help="train a model with LaSeR (every LaserConfig/GRPOConfig field is a flag or a YAML key)",
        add_help=False,
    )


def run(args: argparse.Namespace) -> None:
    from trl import ModelConfig, TrlParser, get_peft_config

    from laser_rl.config import LaserConfig
    from laser_rl.data import DataArguments, load_problems
    from laser_rl.grading import math_reward
    from laser_rl.tokens import check_reward_token_unused
    from laser_rl.trainer import LaserGRPOTrainer

    parser = TrlParser((DataArguments, LaserConfig, ModelConfig), prog="laser train")
    try:
        data_args, config, model_args = parser.parse_args_and_config(args.train_argv)
    except (ValueError, FileNotFoundError) as error:  # unknown YAML keys, bad values, missing config file
        raise LaserInputError(str(error).splitlines()[0]) from error
    if not model_args.model_name_or_path:
        raise LaserInputError("model_name_or_path: no model given")
    config.model_init_kwargs = {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
        **(config.model_init_kwargs or {}),
    }
    dataset = load_problems(data_args)
    trainer = LaserGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=math_reward,
        args=config,
        train_dataset=dataset,
        peft_config=get_peft_config(model_args),
    )
    prompts = (p if isinstance(p, str) else p[-1]["content"] for p in dataset["prompt"])
    check_reward_token_unused(trainer.processing_class, trainer.reward_token_id, prompts, data_args.dataset)
    check_reward_token_unused(trainer.processing_class, trainer.reward_token_id, dataset["answer"], data_args.dataset)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model(config.output_dir)
    if trainer.accelerator.is_main_process:
        print(f"laser train: model saved to {config.output_dir}", file=sys.stderr)
