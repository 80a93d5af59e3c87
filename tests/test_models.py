"""Resolving models (names, .gguf files, folders) and the settings a model folder carries: no download here."""

import json

import pytest

from laser_rl.errors import LaserInputError
from laser_rl.model_settings import LASER_CONFIG, ModelSettings
from laser_rl.models import MODELS, PULL_RECORD, pull, resolve_model
from laser_rl.prompts import DEFAULT_PROMPT_TEMPLATE
from laser_rl.scoring import scoring_settings


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LASER_RL_CACHE", str(tmp_path / "cache"))


def test_folders_and_hub_ids_pass_through_and_missing_paths_are_named(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    for missing in (str(tmp_path / "absent"), "./runs/absent", "runs/a/absent"):
        with pytest.raises(LaserInputError, match="no such model folder"):
            resolve_model(missing)
    with pytest.raises(LaserInputError, match="no such .gguf file"):
        resolve_model(str(tmp_path / "absent.gguf"))


def test_a_gguf_that_is_not_a_model_is_one_clear_error_and_leaves_nothing(tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_bytes(b"GGUF but not really a model")
    with pytest.raises(LaserInputError, match="notes.gguf: not a GGUF model"):
        resolve_model(str(bogus))
    assert not list((tmp_path / "cache" / "gguf").glob(f"*/{PULL_RECORD}"))


def test_an_interrupted_pull_is_started_again_never_loaded(tmp_path, monkeypatch):
    import laser_rl.models

    name = next(iter(MODELS))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"stand-in")
    monkeypatch.setattr(laser_rl.models, "_installed_gguf", lambda spec: gguf)

    def killed_half_way(source, out, record):
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(laser_rl.models, "convert_gguf", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        pull(name, log=lambda message: None)
    target = tmp_path / "cache" / "models" / name
    assert not target.exists()  # only the staging folder holds the half-written weights

    def converted(source, out, record):
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"whole")
        (out / PULL_RECORD).write_text(json.dumps(record))

    monkeypatch.setattr(laser_rl.models, "convert_gguf", converted)
    assert pull(name, log=lambda message: None) == target
    assert (target / "model.safetensors").read_bytes() == b"whole"
    assert not target.with_name(target.name + ".partial").exists()
    monkeypatch.setattr(laser_rl.models, "convert_gguf", killed_half_way)
    assert pull(name, log=lambda message: None) == target  # idempotent: nothing is converted again


def test_model_settings_merge_and_name_the_file_and_field(tmp_path):
    ModelSettings(reward_token="<|reward|>", c_ref=-7.0).write(tmp_path)
    ModelSettings(self_reward_beta=0.2, c_ref=None).write(tmp_path)
    assert ModelSettings.read(tmp_path) == ModelSettings(reward_token="<|reward|>", c_ref=-7.0, self_reward_beta=0.2)
    assert json.loads((tmp_path / LASER_CONFIG).read_text()) == {
        "reward_token": "<|reward|>", "c_ref": -7.0, "self_reward_beta": 0.2
    }  # fmt: skip
    for text, field in [
        ('{"c_ref": "low"}', "c_ref"),
        ('{"chat": 1}', "chat"),
        ('{"c_ref_solutions": 2.5}', "c_ref_solutions"),
    ]:
        (tmp_path / LASER_CONFIG).write_text(text)
        with pytest.raises(LaserInputError, match=f"{LASER_CONFIG}: field '{field}'"):
            ModelSettings.read(tmp_path)
        with pytest.raises(LaserInputError, match=f"{LASER_CONFIG}: field '{field}'"):  # named, not overwritten
            ModelSettings(c_ref=-1.0).write(tmp_path)


def test_a_stored_c_ref_is_matched_to_z_c_by_id(tokenizer, tmp_path):
    reward_id = tokenizer.convert_tokens_to_ids("<|reward|>")
    stored = ModelSettings(reward_token="<|reward|>", c_ref=-7.0)
    assert stored.measured_for(reward_id, tokenizer, tmp_path)
    assert not stored.measured_for(reward_id + 1, tokenizer, tmp_path)
    tokenizer.save_pretrained(tmp_path)
    stored.write(tmp_path)
    by_id = scoring_settings(tokenizer, str(tmp_path), reward_token=str(reward_id))
    assert (by_id.reward_token, by_id.c_ref) == ("<|reward|>", -7.0)


def test_the_initial_score_moves_the_stored_c_ref_and_reads_back():
    settings = ModelSettings.scored_with(-40.0, 0.5, 0.5, reward_token="<|reward|>")
    assert settings.c_ref == -41.0 and settings.reference_c_ref == -40.0
    assert ModelSettings(c_ref=-41.0, self_reward_beta=0.5).reference_c_ref == -41.0


def test_scoring_settings_come_from_flags_then_the_folder_then_defaults(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(LaserInputError, match="the tokenizer has no <\\|vision_start\\|>"):
        scoring_settings(tokenizer, str(tmp_path), need_c_ref=False)  # the product's default z_c is Qwen's
    defaults = scoring_settings(tokenizer, str(tmp_path), reward_token="<|reward|>", need_c_ref=False)
    assert (defaults.reward_token, defaults.c_ref, defaults.beta_v) == ("<|reward|>", None, 0.1)
    assert (defaults.prompt_template, defaults.chat) == (DEFAULT_PROMPT_TEMPLATE, False)
    ModelSettings(reward_token="<|reward|>", c_ref=-7.0, self_reward_beta=0.2, prompt_template="Q: {problem}=").write(
        tmp_path
    )
    from_folder = scoring_settings(tokenizer, str(tmp_path))
    assert (from_folder.c_ref, from_folder.beta_v, from_folder.prompt_template) == (-7.0, 0.2, "Q: {problem}=")
    flags = scoring_settings(tokenizer, str(tmp_path), c_ref=-3.0, beta_v=0.5, prompt_template="{problem}")
    assert (flags.c_ref, flags.beta_v, flags.prompt_template) == (-3.0, 0.5, "{problem}")
    ModelSettings(reward_token="<|absent|>").write(tmp_path)
    with pytest.raises(LaserInputError, match=f"{LASER_CONFIG}: .*not a single token"):
        scoring_settings(tokenizer, str(tmp_path))


@pytest.mark.parametrize("token", ["<|reward|>", "7"], ids=["added token", "ordinary token"])
def test_a_text_that_uses_z_c_is_named_by_row(tokenizer, token):
    from laser_rl.tokens import check_reward_token_unused

    token_id = tokenizer.convert_tokens_to_ids(token)
    check_reward_token_unused(tokenizer, token_id, ["1+1=2", "no such token"], "data.jsonl")
    with pytest.raises(LaserInputError, match=r"data.jsonl: row 2 uses the reward token"):
        check_reward_token_unused(tokenizer, token_id, ["1+1=2", "no such token", f"x{token}y"], "data.jsonl")
