"""Resolving and checking the reward token z_c."""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

from laser_rl.errors import LaserInputError

# z_c when neither the user nor the model folder's laser_config.json names one: Qwen2.5's, as the authors used.
DEFAULT_REWARD_TOKEN = "<|vision_start|>"


def resolve_reward_token(tokenizer: PreTrainedTokenizerBase, token: str | int) -> int:
    """The id of the reward token, given as a token string or an id (int or digits).

    Raises `LaserInputError` if it is not a single token of the vocabulary, or if it is the EOS
    or pad token (z_c must be a token the model otherwise never emits).
    """
    vocab_size = len(tokenizer)
    if isinstance(token, int) or str(token).isdigit():
        token_id = int(token)
        if not 0 <= token_id < vocab_size:
            raise LaserInputError(f"reward_token: id {token_id} is outside the vocabulary (size {vocab_size})")
    else:
        token_id = tokenizer.convert_tokens_to_ids(token)
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if token_id is None or token_id == tokenizer.unk_token_id or encoded != [token_id]:
            raise LaserInputError(f"reward_token: {token!r} is not a single token of the tokenizer")
    if token_id in (tokenizer.eos_token_id, tokenizer.pad_token_id):
        raise LaserInputError(f"reward_token: {token!r} is the EOS or pad token; pick an unused token")
    return token_id


def check_reward_token_unused(
    tokenizer: PreTrainedTokenizerBase, reward_token_id: int, texts: Iterable[str], source: str, batch: int = 4096
) -> None:
    """Raise `LaserInputError` naming the first text of `source` whose tokens contain z_c.

    An added token (the special tokens z_c is normally chosen among) is split out of a text wherever its string
    occurs, so a substring test decides; any other z_c is looked for in the texts' encodings, in batches.
    """
    texts = list(texts)
    token = tokenizer.convert_ids_to_tokens(reward_token_id)
    if reward_token_id in tokenizer.added_tokens_decoder:
        used = (index for index, text in enumerate(texts) if token in text)
    else:
        used = (
            start + offset
            for start in range(0, len(texts), batch)
            for offset, ids in enumerate(
                tokenizer(texts[start : start + batch], add_special_tokens=False)["input_ids"]
            )
            if reward_token_id in ids
        )
    index = next(used, None)
    if index is not None:
        raise LaserInputError(f"{source}: row {index} uses the reward token {token!r}; pick an unused token")
