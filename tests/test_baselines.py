"""The free baselines LaSeR's score is compared with, and the thresholds their F1 needs."""

import math

import pytest
import torch

from laser_rl.baselines import VERIFY_QUESTION, mean_token_logps, yes_probabilities
from laser_rl.metrics import best_f1_threshold, cross_fitted_metrics


def test_mean_token_logps_average_the_responses_own_tokens(short_answer_model, tokenizer):
    prompts = [tokenizer("Q: 3+4=").input_ids, tokenizer("Q: 12+1=").input_ids]
    responses = [tokenizer("7").input_ids + [tokenizer.eos_token_id], tokenizer("13x9").input_ids]
    got = mean_token_logps(short_answer_model, tokenizer, prompts, responses, batch_size=2)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        with torch.no_grad():
            logps = short_answer_model(torch.tensor([prompt + response])).logits[0].log_softmax(-1)
        expected = sum(logps[len(prompt) - 1 + t, token].item() for t, token in enumerate(response)) / len(response)
        assert got[row].item() == pytest.approx(expected, abs=1e-5)


def test_yes_probability_is_the_next_tokens_share_of_yes_against_no(short_answer_model, tokenizer):
    texts = ["Q: 3+4=7", "Q: 12+1=99 and then some"]
    got = yes_probabilities(short_answer_model, tokenizer, texts, batch_size=2)
    yes = [tokenizer.convert_tokens_to_ids(c) for c in "yY"]  # the character tokenizer: " " starts both words
    no = [tokenizer.convert_tokens_to_ids(c) for c in "nN"]
    for row, text in enumerate(texts):
        with torch.no_grad():
            ids = torch.tensor([tokenizer(text + VERIFY_QUESTION).input_ids])
            p = short_answer_model(ids).logits[0, -1].softmax(-1)
        assert got[row].item() == pytest.approx((p[yes].sum() / (p[yes].sum() + p[no].sum())).item(), abs=1e-5)


def test_best_f1_threshold_separates_what_can_be_separated():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.9])
    labels = torch.tensor([False, False, True, True, True])
    threshold = best_f1_threshold(scores, labels)
    # above 0.4: 2 of 3 right and both wrong judged so, F1 0.8; above 0.1 (every right one, one wrong): 0.67
    assert threshold == pytest.approx((0.4 + 0.8) / 2)
    assert math.isnan(best_f1_threshold(scores, torch.ones(5, dtype=torch.bool)))


def test_cross_fitted_metrics_judge_each_half_with_the_other_halfs_threshold():
    scores = torch.tensor([0.0, 1.0, 3.0, 4.0, 0.5, 1.5, 3.5, 4.5])
    labels = torch.tensor([False, False, True, True, False, False, True, True])
    half = torch.tensor([True] * 4 + [False] * 4)
    metrics = cross_fitted_metrics(scores, labels, half)
    assert metrics["f1"] == 1.0 and metrics["auroc"] == 1.0
    shuffled = cross_fitted_metrics(scores, labels.flip(0), half)
    assert shuffled["f1"] < 1.0 and shuffled["auroc"] < 0.5
