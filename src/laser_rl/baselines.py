"""Signals of correctness a model gives without any training for them: what LaSeR's score must beat.

- `mean_token_logps`: self-certainty, the solution's mean token log-probability under the model that
  wrote it: one forward over prompt + solution.
- `yes_probabilities`: generate-then-verify, the model asked whether its solution is correct;
  P(yes) / (P(yes) + P(no)) of the next token: one forward over prompt + solution + question.

LaSeR's score costs one more decoding step, read in the pass that wrote the solution; each of these
costs a forward over the whole solution after the fact (more for the question's tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

VERIFY_QUESTION = "\nIs the solution above correct? Answer yes or no.\n"
YES, NO = ("yes", "Yes", " yes", " Yes"), ("no", "No", " no", " No")


def _first_tokens(tokenizer: PreTrainedTokenizerBase, words: Sequence[str]) -> list[int]:
    """The first token of each spelling of a word, distinct: what a model starts that word with."""
    return sorted({tokenizer(word, add_special_tokens=False).input_ids[0] for word in words})


@torch.no_grad()
def mean_token_logps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> torch.Tensor:
    """Mean log pi(y_t | x, y_<t) over each response's tokens (its EOS included), untempered.

    Args:
        prompts: N prompts as ids.
        responses: N sampled responses as ids.

    Returns:
        (N,) float32.
    """
    means = []
    for start in range(0, len(prompts), batch_size):
        rows = [list(p) + list(r) for p, r in zip(prompts[start : start + batch_size],
                                                  responses[start : start + batch_size], strict=True)]  # fmt: skip
        batch = tokenizer.pad({"input_ids": rows}, padding_side="right", return_tensors="pt").to(model.device)
        logps = model(**batch).logits[:, :-1].float().log_softmax(-1)
        logps = logps.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        response_mask = torch.zeros_like(logps)
        for row, (prompt, response) in enumerate(zip(prompts[start : start + batch_size],
                                                     responses[start : start + batch_size], strict=True)):  # fmt: skip
            response_mask[row, len(prompt) - 1 : len(prompt) - 1 + len(response)] = 1
        means.append(((logps * response_mask).sum(1) / response_mask.sum(1)).cpu())
    return torch.cat(means) if means else torch.empty(0)


@torch.no_grad()
def yes_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    solutions: Sequence[str],
    question: str = VERIFY_QUESTION,
    batch_size: int = 16,
) -> torch.Tensor:
    """P(yes) / (P(yes) + P(no)) of the token after `solution + question`, each summed over the first tokens of
    its spellings (yes, Yes, with and without a space) that the other word does not start with.

    Args:
        solutions: N texts, each the rendered prompt followed by the solution.

    Returns:
        (N,) float32 in [0, 1].
    """
    yes, no = (
        _first_tokens(tokenizer, ["yes", "Yes", " yes", " Yes"]),
        _first_tokens(tokenizer, ["no", "No", " no", " No"]),
    )
    yes, no = sorted(set(yes) - set(no)), sorted(set(no) - set(yes))  # a shared first token (" ") tells neither
    if not yes or not no:
        raise ValueError("the tokenizer starts every spelling of 'yes' and 'no' with the same tokens")
    probabilities = []
    for start in range(0, len(solutions), batch_size):
        texts = [text + question for text in solutions[start : start + batch_size]]
        batch = tokenizer(texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
        batch = batch.to(model.device)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        logits = model(**batch, position_ids=positions, logits_to_keep=1).logits[:, -1].float()
        p = logits.softmax(-1)
        p_yes, p_no = p[:, yes].sum(-1), p[:, no].sum(-1)
        probabilities.append((p_yes / (p_yes + p_no).clamp(min=1e-30)).cpu())
    return torch.cat(probabilities) if probabilities else torch.empty(0)
