"""Self-reward scores after the fact, and the choice of the reward token z_c and of c_ref.

- `scoring_settings`: z_c, c_ref, beta_v and the prompt settings of a command, from its flags,
  else from the model folder's laser_config.json, else the defaults.
- `score_solutions`: log pi(z_c | x, y, EOS) of solutions produced elsewhere, one forward each.
- `token_stats`: c_ref, the mean (and spread) of log pi_ref(z_c | x, y, EOS) over solutions.
- `suggest_reward_tokens`: unused special tokens ranked as candidates for z_c.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from laser_rl.core import self_reward_scores
from laser_rl.errors import LaserInputError
from laser_rl.model_settings import ModelSettings, settings_path
from laser_rl.prompts import prompt_settings
from laser_rl.tokens import DEFAULT_REWARD_TOKEN, resolve_reward_token

DEFAULT_BETA_V = 0.1


@dataclass(frozen=True)
class ScoringSettings:
    """What a command needs to score solutions of one model and to prompt it as it was trained.

    Attributes:
        c_ref: None when it was not needed (`need_c_ref=False`) and is known nowhere.
    """

    reward_token: str
    reward_token_id: int
    c_ref: float | None
    beta_v: float
    prompt_template: str
    chat: bool


def scoring_settings(
    tokenizer: PreTrainedTokenizerBase,
    model: str,
    reward_token: str | None = None,
    c_ref: float | None = None,
    beta_v: float | None = None,
    prompt_template: str | None = None,
    chat: bool | None = None,
    need_c_ref: bool = True,
) -> ScoringSettings:
    """Each setting from its argument, else the model folder's laser_config.json, else the default.

    c_ref from laser_config.json is used only if it was measured for the same reward token (by id).
    Raises `LaserInputError` naming the file or flag that is wrong, or that c_ref is known nowhere.
    """
    stored = ModelSettings.read(model)
    where = settings_path(model)
    if reward_token is None and (stored.reward_token or stored.reward_token_id) is not None:
        token_id = stored.token_id(tokenizer, model)
    else:
        token_id = _default_or_given_token(tokenizer, reward_token)
    token = tokenizer.convert_ids_to_tokens(token_id)
    if c_ref is None and stored.c_ref is not None:
        if stored.measured_for(token_id, tokenizer, model):
            c_ref = stored.c_ref
        elif need_c_ref:
            raise LaserInputError(f"not given, and {where} has one measured for another token", "c_ref")
    if c_ref is None and need_c_ref:
        raise LaserInputError(f"not given, and {where} has none (calibrating with --save stores it)", "c_ref")
    beta_v = beta_v or stored.self_reward_beta or DEFAULT_BETA_V
    template, chat = prompt_settings(tokenizer, stored, prompt_template, chat)
    return ScoringSettings(token, token_id, c_ref, float(beta_v), template, chat)


def _default_or_given_token(tokenizer: PreTrainedTokenizerBase, token: str | None) -> int:
    if token is None and DEFAULT_REWARD_TOKEN not in tokenizer.get_vocab():
        raise LaserInputError(
            f"not given, no laser_config.json names one, and the tokenizer has no {DEFAULT_REWARD_TOKEN} "
            "(calibrating with --suggest ranks candidates)",
            "reward_token",
        )
    try:
        return resolve_reward_token(tokenizer, token or DEFAULT_REWARD_TOKEN)
    except LaserInputError as error:
        raise LaserInputError(str(error).removeprefix("reward_token: "), "reward_token") from None


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


def solution_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str | Sequence[int], eos_token_id: int
) -> list[int]:
    """prompt + response + EOS as ids, the prompt tokenized as `generate_with_scores` does.

    A response given as ids (what was sampled, EOS included) is used as it is. A response given as
    text is encoded again and the tokenizer's EOS appended: with a BPE vocabulary that can give
    other ids than were sampled (a word split another way, another stop token), hence a slightly
    different score.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    if not isinstance(response, str):
        return prompt_ids + list(response)
    return prompt_ids + tokenizer(response, add_special_tokens=False).input_ids + [eos_token_id]


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
    rows = [torch.empty(0, len(columns))]  # no sequence at all: (0, T)
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
    responses: Sequence[str | Sequence[int]],
    reward_token_id: int,
    eos_token_id: int,
    batch_size: int = 8,
) -> list[float]:
    """log pi(z_c | x, y, EOS) of each (rendered prompt, finished response): one short forward per
    solution, batched. A response is its sampled ids (EOS included) or its text (see `solution_ids`)."""
    sequences = [
        solution_ids(tokenizer, prompt, response, eos_token_id)
        for prompt, response in zip(prompts, responses, strict=True)
    ]
    return eos_logprobs(model, tokenizer, sequences, [reward_token_id], batch_size)[:, 0].tolist()


def record_logps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    record: dict,
    prompt: str,
    reward_token_id: int,
    eos_token_id: int,
    batch_size: int = 8,
) -> list[float | None]:
    """log pi(z_c | x, y, EOS) of a record's finished responses, None for truncated ones.

    Uses the sampled ids where the record has them (`response_token_ids`, written by `laser
    generate`), so the score equals the one read during generation; else the responses' text.
    """
    finished = record.get("finished") or [True] * len(record["responses"])
    responses = record.get("response_token_ids") or record["responses"]
    done = [response for response, is_done in zip(responses, finished, strict=True) if is_done]
    logps = iter(
        score_solutions(model, tokenizer, [prompt] * len(done), done, reward_token_id, eos_token_id, batch_size)
    )
    return [next(logps) if is_done else None for is_done in finished]


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
        raise LaserInputError("the tokenizer has no special token the data does not use; name one", "reward_token")
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
