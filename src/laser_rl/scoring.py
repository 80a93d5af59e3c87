"""Self-reward scores after the fact, and the choice of the reward token z_c and of c_ref.

- `score_solutions`: log pi(z_c | x, y, EOS) of solutions produced elsewhere, one forward each.
- `token_stats`: c_ref, the mean (and spread) of log pi_ref(z_c | x, y, EOS) over solutions.
- `suggest_reward_tokens`: unused special tokens ranked as candidates for z_c.
- `choose_reward_token` / `resolve_c_ref`: from flags, else from the model directory's
  laser_config.json (written by `laser calibrate --save`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from laser_rl.core import self_reward_scores
from laser_rl.errors import LaserInputError
from laser_rl.tokens import resolve_reward_token

LASER_CONFIG = "laser_config.json"
# Without --reward-token: the demo models' token, else Qwen's <|vision_start|> as the authors used.
DEFAULT_REWARD_TOKENS = ("<|reward|>", "<|vision_start|>")


@dataclass(frozen=True)
class TokenStats:
    """log pi(token | x, y, EOS) over a set of solutions.

    Attributes:
        mean: c_ref when the model is the reference model.
        std: population standard deviation; small means a constant c_ref is a good stand-in for
            log pi_ref(z_c | x, y).
    """

    token: str
    token_id: int
    mean: float
    std: float
    count: int

    @property
    def upper(self) -> float:
        """mean + 2 std: for normally spread log-probs, 97.7% of solutions give the token less than this."""
        return self.mean + 2 * self.std


def token_stats(token: str, token_id: int, logps: torch.Tensor) -> TokenStats:
    """Summarise (N,) log-probs of one token."""
    std, mean = torch.std_mean(logps.double(), correction=0)
    return TokenStats(token, token_id, mean.item(), std.item(), logps.numel())


def read_laser_config(model: str) -> dict:
    """The model directory's laser_config.json ({} when there is none)."""
    path = Path(model) / LASER_CONFIG
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LaserInputError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(config, dict):
        raise LaserInputError(f"{path}: expected a JSON object")
    return config


def write_laser_config(model: str, stats: TokenStats) -> Path:
    """Store the reward token and its c_ref in the model directory, for later commands."""
    path = Path(model) / LASER_CONFIG
    config = read_laser_config(model) | {
        "reward_token": stats.token,
        "reward_token_id": stats.token_id,
        "c_ref": stats.mean,
        "c_ref_std": stats.std,
        "c_ref_solutions": stats.count,
    }
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def choose_reward_token(tokenizer: PreTrainedTokenizerBase, token: str | None, model: str) -> tuple[str, int]:
    """z_c as (token text, id).

    Args:
        token: a token's text or an id; None for the model directory's laser_config.json, else
            the first of DEFAULT_REWARD_TOKENS that the tokenizer has.
        model: the model directory.
    """
    token = token or read_laser_config(model).get("reward_token")
    if token is None:
        vocab = tokenizer.get_vocab()
        token = next((name for name in DEFAULT_REWARD_TOKENS if name in vocab), None)
        if token is None:
            raise LaserInputError(
                f"no --reward-token given and the tokenizer has none of {', '.join(DEFAULT_REWARD_TOKENS)}; "
                "`laser calibrate --suggest` ranks candidates"
            )
    token_id = resolve_reward_token(tokenizer, token)
    return tokenizer.convert_ids_to_tokens(token_id), token_id


def resolve_c_ref(model: str, token: str, c_ref: float | None) -> float:
    """c_ref: the flag, else laser_config.json's value when it was calibrated for `token`."""
    if c_ref is not None:
        return c_ref
    config = read_laser_config(model)
    if "c_ref" not in config:
        raise LaserInputError(
            f"no --c-ref given and {Path(model) / LASER_CONFIG} has no c_ref; "
            f"run `laser calibrate --model {model} --data FILE --save` or pass --c-ref"
        )
    if config.get("reward_token") != token or not isinstance(config["c_ref"], int | float):
        raise LaserInputError(
            f"no --c-ref given and the c_ref of {Path(model) / LASER_CONFIG} is not a number "
            f"calibrated for {token!r}; pass --c-ref"
        )
    return float(config["c_ref"])


def solution_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, eos_token_id: int) -> list[int]:
    """prompt + response + EOS as ids, the prompt tokenized as `generate_with_scores` does."""
    prompt_ids, response_ids = tokenizer([prompt, response], add_special_tokens=False).input_ids
    return prompt_ids + response_ids + [eos_token_id]


def last_token_logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sequences: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Raw next-token logits after each sequence's last token, in one forward (with autograd).

    Sequences are left-padded so that every last token sits in the last column, and only that
    column's logits are computed.

    Returns:
        (N, V) untempered logits.
    """
    batch = tokenizer.pad(
        {"input_ids": [list(ids) for ids in sequences]}, padding_side="left", return_tensors="pt"
    ).to(model.device)
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as `generate` numbers them
    return model(**batch, position_ids=positions, logits_to_keep=1).logits[:, -1]


@torch.no_grad()
def eos_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sequences: Sequence[Sequence[int]],
    token_ids: Sequence[int],
    batch_size: int = 8,
) -> torch.Tensor:
    """Untempered log pi(t | sequence) of tokens t after each sequence's last token (its EOS).

    Returns:
        (N, T) float32 on the CPU: sequence n, token_ids[t].
    """
    columns = torch.tensor(list(token_ids), device=model.device)
    rows = []
    for start in range(0, len(sequences), batch_size):
        logits = last_token_logits(model, tokenizer, sequences[start : start + batch_size])
        rows.append(logits.float().log_softmax(dim=-1)[:, columns].cpu())
    return torch.cat(rows)


def self_reward_score_list(logps: Sequence[float | None], c_ref: float, beta_v: float) -> list[float | None]:
    """r_s = beta_v * (log pi(z_c | x, y, EOS) - c_ref) of each solution; None (truncated) stays None."""
    values = torch.tensor([math.nan if logp is None else logp for logp in logps], dtype=torch.float64)
    scores = self_reward_scores(values, c_ref, beta_v).tolist()
    return [None if logp is None else score for logp, score in zip(logps, scores, strict=True)]


def score_solutions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    reward_token_id: int,
    eos_token_id: int,
    batch_size: int = 8,
) -> list[float]:
    """log pi(z_c | x, y, EOS) of each (rendered prompt, response): one short forward per solution,
    batched."""
    sequences = [
        solution_ids(tokenizer, prompt, response, eos_token_id)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    return eos_logprobs(model, tokenizer, sequences, [reward_token_id], batch_size)[:, 0].tolist()


def candidate_reward_tokens(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str]) -> dict[str, int]:
    """Special and added tokens (reserved ones included) that the texts never use, EOS/pad/BOS/UNK
    excluded: the tokens that could serve as z_c, by text."""
    busy = {tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
    texts = list(texts)
    candidates = {
        added.content: token_id
        for token_id, added in tokenizer.added_tokens_decoder.items()
        if token_id not in busy and not any(added.content in text for text in texts)
    }
    if not candidates:
        raise LaserInputError("the tokenizer has no special token that the data does not use; choose one with --token")
    return candidates


def suggest_reward_tokens(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sequences: Sequence[Sequence[int]],
    texts: Iterable[str],
    batch_size: int = 8,
) -> list[TokenStats]:
    """Unused special tokens ranked as z_c candidates, best first.

    The best z_c has a small and stable log-prob after the EOS (so Z(x, y) is about 1 and a
    constant c_ref stands in for the reference model); they are ranked by mean + 2 std.

    Args:
        sequences: prompt + solution + EOS ids of the model's own solutions.
        texts: the prompts and solutions, to rule out tokens that they use.
    """
    candidates = candidate_reward_tokens(tokenizer, texts)
    logps = eos_logprobs(model, tokenizer, sequences, list(candidates.values()), batch_size)
    stats = [token_stats(token, token_id, logps[:, k]) for k, (token, token_id) in enumerate(candidates.items())]
    return sorted(stats, key=lambda stat: stat.upper)
