"""A character-level tokenizer and a tiny Qwen2 model built from scratch, with no downloads: the
models of the test suite, the benchmarks and `laser demo`. No part of the library depends on them.

Both are ordinary Hugging Face objects: `save_pretrained` them and every laser command loads
them like a Hub model.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

PAD, EOS, BOS = "<|pad|>", "<|endoftext|>", "<|startoftext|>"
# The reward token z_c of these models: a special token that the data and the model never otherwise
# use, like Qwen2.5's <|vision_start|>.
REWARD_TOKEN = "<|reward|>"
SPECIAL_TOKENS = [PAD, EOS, BOS, REWARD_TOKEN]
CHARACTERS = string.digits + string.ascii_letters + string.punctuation + " \n"


def build_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, plus pad, EOS, BOS and the reward token.

    The vocabulary is written in the byte-level alphabet (" " is "Ġ", "\\n" is "Ċ") with a
    merge-free BPE: transformers reloads any directory of a qwen2 model as a `Qwen2Tokenizer`,
    whose byte-level pre-tokenizer would otherwise drop every space and newline.
    """
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for character in CHARACTERS:
        vocab[_byte_level(character)] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, bos_token=BOS, padding_side="left"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [REWARD_TOKEN]})
    return tokenizer


def _byte_level(character: str) -> str:
    """How GPT-2's byte-level alphabet writes an ASCII character (printable ones stay as they are)."""
    code = ord(character)
    return character if 33 <= code <= 126 else chr(256 + code)


def build_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    max_length: int = 512,
    seed: int = 0,
    num_key_value_heads: int | None = None,
    vocab_size: int | None = None,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM sized for a CPU (about 0.8M parameters by default).

    `num_key_value_heads` (default: `num_heads`) and `vocab_size` (default: the tokenizer's, larger
    for a realistic LM-head width) give larger models of the same family.
    """
    import torch

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_key_value_heads or num_heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
