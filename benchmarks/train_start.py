"""What `laser train` does with the data before its first step, on a large file: load and prompt it
(`data.load_problems`) and check that no prompt or answer uses z_c, as `cli/train.py` does it (the chat
wrapper once, then a substring test for an added token) against one chat rendering and one encode per row
(how it did it before). SmolLM2's tokenizer and chat template, synthetic additions, wall-clock seconds.

    python -m benchmarks.train_start [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import AutoTokenizer

from benchmarks.common import SMOLLM2_REWARD_TOKEN, print_table
from laser_rl.data import DataArguments, load_problems
from laser_rl.models import pull
from laser_rl.prompts import DEFAULT_PROMPT_TEMPLATE, render_prompts
from laser_rl.tokens import check_reward_token_unused


def per_row_check(tokenizer, reward_token_id: int, problems: list[str], answers: list[str]) -> None:
    """The former check: every prompt rendered through the chat template, every text encoded alone."""
    for text in [*render_prompts(tokenizer, problems, "{problem}", chat=True), *answers]:
        assert reward_token_id not in tokenizer.encode(text, add_special_tokens=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(pull("smollm2-135m-instruct"))
    reward_token_id = tokenizer.convert_tokens_to_ids(SMOLLM2_REWARD_TOKEN)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "problems.jsonl"
        rows = ({"problem": f"What is {i} + {3 * i + 7}?", "answer": str(4 * i + 7)} for i in range(args.rows))
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        start = time.perf_counter()
        dataset = load_problems(DataArguments(dataset=str(path)), DEFAULT_PROMPT_TEMPLATE, chat=True)
        loaded = time.perf_counter() - start
        texts = dataset.select_columns(["prompt", "answer"]).to_dict()
        problems = [prompt[-1]["content"] for prompt in texts["prompt"]]
        start = time.perf_counter()
        check_reward_token_unused(tokenizer, reward_token_id, render_prompts(tokenizer, [""], "{problem}", True), "t")
        check_reward_token_unused(tokenizer, reward_token_id, problems, "problems")
        check_reward_token_unused(tokenizer, reward_token_id, texts["answer"], "answers")
        batched = time.perf_counter() - start
        start = time.perf_counter()
        per_row_check(tokenizer, reward_token_id, problems, texts["answer"])
        per_row = time.perf_counter() - start
    print_table(
        f"laser train's start on {args.rows:,} rows (s)",
        ["load and prompt", "z_c check, now", "z_c check, per row (before)", "per row / now"],
        [[f"{loaded:.1f}", f"{batched:.1f}", f"{per_row:.1f}", f"{per_row / batched:.1f}"]],
    )


if __name__ == "__main__":
    main()
