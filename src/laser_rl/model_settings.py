"""What a model folder carries to be scored with: `laser_config.json`.

`laser calibrate --save` writes the reward token and c_ref there; `LaserGRPOTrainer` writes it into
every checkpoint and the final model folder with beta_v and the prompt settings it trained with.
The trainer and every command read it as their defaults, so train and test cannot drift apart:

| key | meaning |
|---|---|
| reward_token, reward_token_id | z_c |
| c_ref (c_ref_std, c_ref_solutions) | the scores' constant: log pi_ref(z_c \\| x, y), and how it was measured |
| self_reward_beta | beta_v |
| self_reward_initial_score | a reference solution's score; c_ref is moved by it already (`reference_c_ref`) |
| prompt_template, chat | how problems became prompts (see `laser_rl.prompts`) |
"""

from __future__ import annotations

import json
from pathlib import Path

from laser_rl.errors import LaserInputError
from laser_rl.jsonl import write_text_atomically

LASER_CONFIG = "laser_config.json"
_TYPES = {
    "reward_token": (str,),
    "reward_token_id": (int,),
    "c_ref": (int, float),
    "c_ref_std": (int, float),
    "c_ref_solutions": (int,),
    "self_reward_beta": (int, float),
    "self_reward_initial_score": (int, float),
    "prompt_template": (str,),
    "chat": (bool,),
}


def read_model_settings(model: str | Path | None) -> dict:
    """The model folder's laser_config.json, checked field by field ({} when there is none).

    Raises `LaserInputError` naming the file and field for invalid JSON or a mistyped value.
    """
    path = Path(model) / LASER_CONFIG if model else None
    if path is None or not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LaserInputError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(settings, dict):
        raise LaserInputError(f"{path}: expected a JSON object")
    for key, types in _TYPES.items():
        value = settings.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise LaserInputError(f"{path}: field '{key}' has the wrong type ({value!r})")
    if "{problem}" not in settings.get("prompt_template", "{problem}"):
        raise LaserInputError(f"{path}: field 'prompt_template' must contain {{problem}}")
    return settings


def write_model_settings(model: str | Path, settings: dict) -> Path:
    """Merge `settings` into the folder's laser_config.json (written atomically); None values are left out."""
    path = Path(model) / LASER_CONFIG
    merged = read_model_settings(model) | {key: value for key, value in settings.items() if value is not None}
    write_text_atomically(path, json.dumps(merged, indent=2) + "\n")
    return path


def model_settings_path(model: str | Path) -> Path:
    return Path(model) / LASER_CONFIG


def reference_c_ref(settings: dict) -> float | None:
    """The mean log pi_ref(z_c | x, y) behind a folder's c_ref.

    The c_ref a folder stores is the one its scores are computed with: a model trained with an initial
    score s0 stores c_ref - s0 / beta_v, so that r_s = beta_v (log pi(z_c) - c_ref) needs nothing more.
    None when the folder has no c_ref.
    """
    if settings.get("c_ref") is None:
        return None
    initial_score = settings.get("self_reward_initial_score") or 0.0
    return float(settings["c_ref"]) + (initial_score / settings["self_reward_beta"] if initial_score else 0.0)
