"""What a model folder carries to be scored with: `laser_config.json`, read, merged and written here only.

`laser calibrate --save` writes the reward token and c_ref there; `LaserGRPOTrainer` writes it into
every checkpoint and the final model folder with beta_v and the prompt settings it trained with; the
demo writes it for each of its models. The trainer and every command read it as their defaults
(a flag or field given > the folder's file > the default), so train and test cannot drift apart:

| key | meaning |
|---|---|
| reward_token, reward_token_id | z_c |
| c_ref (c_ref_std, c_ref_solutions) | the scores' constant, and how it was measured |
| self_reward_beta | beta_v |
| self_reward_initial_score | a reference solution's score; c_ref is moved by it already (`reference_c_ref`) |
| prompt_template, chat | how problems became prompts (see `laser_rl.prompts`) |

Adding a persisted setting: a field of `ModelSettings`, and its readers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from laser_rl.errors import LaserInputError
from laser_rl.jsonl import write_text_atomically
from laser_rl.tokens import resolve_reward_token

LASER_CONFIG = "laser_config.json"


@dataclass(frozen=True)
class ModelSettings:
    """A model folder's laser_config.json; None is "not stored".

    Attributes:
        c_ref: the constant scores are read with, r_s = beta_v (log pi(z_c) - c_ref): the mean of
            log pi_ref(z_c | x, y) moved by the initial score (see `scored_with`).
    """

    reward_token: str | None = None
    reward_token_id: int | None = None
    c_ref: float | None = None
    c_ref_std: float | None = None
    c_ref_solutions: int | None = None
    self_reward_beta: float | None = None
    self_reward_initial_score: float | None = None
    prompt_template: str | None = None
    chat: bool | None = None

    @classmethod
    def scored_with(cls, reference_c_ref: float | None, beta: float, initial_score: float, **fields) -> ModelSettings:
        """Settings whose c_ref gives a solution at the reference mean `reference_c_ref` the score
        `initial_score`: c_ref = reference_c_ref - initial_score / beta, so `laser score` needs nothing more."""
        c_ref = None if reference_c_ref is None else reference_c_ref - initial_score / beta
        return cls(c_ref=c_ref, self_reward_beta=beta, self_reward_initial_score=initial_score, **fields)

    @property
    def reference_c_ref(self) -> float | None:
        """The mean log pi_ref(z_c | x, y) behind c_ref (None when there is no c_ref)."""
        if self.c_ref is None:
            return None
        initial_score = self.self_reward_initial_score or 0.0
        return self.c_ref + (initial_score / self.self_reward_beta if initial_score else 0.0)

    @classmethod
    def read(cls, model: str | Path | None) -> ModelSettings:
        """The folder's laser_config.json, checked field by field (empty when there is none; keys this
        version does not know are passed over).

        Raises `LaserInputError` naming the file and field for invalid JSON or a mistyped value.
        """
        stored = _checked_json(settings_path(model)) if model else {}
        values = {field.name: stored.get(field.name) for field in dataclasses.fields(cls)}
        floats = {field.name for field in dataclasses.fields(cls) if "float" in field.type}
        return cls(**{name: float(value) if name in floats and value is not None else value
                      for name, value in values.items()})  # fmt: skip

    def write(self, model: str | Path) -> Path:
        """Merge these settings into the folder's laser_config.json (written atomically); None fields leave
        the stored value as it is. A broken file is named, not overwritten."""
        path = settings_path(model)
        merged = _checked_json(path) | {
            key: value for key, value in dataclasses.asdict(self).items() if value is not None
        }
        write_text_atomically(path, json.dumps(merged, indent=2) + "\n")
        return path

    def token_id(self, tokenizer: PreTrainedTokenizerBase, model: str | Path) -> int | None:
        """The id of the stored z_c (None when none is stored). Raises `LaserInputError` naming the file when
        the tokenizer does not have it as one token."""
        if self.reward_token is None and self.reward_token_id is None:
            return None
        try:
            return resolve_reward_token(tokenizer, self.reward_token or str(self.reward_token_id))
        except LaserInputError as error:
            raise LaserInputError(f"{settings_path(model)}: {str(error).removeprefix('reward_token: ')}") from None

    def measured_for(self, token_id: int, tokenizer: PreTrainedTokenizerBase, model: str | Path) -> bool:
        """Whether the stored c_ref was measured for z_c = `token_id`, compared by id (a token given as
        "151652" matches a stored "<|vision_start|>")."""
        return self.c_ref is not None and self.token_id(tokenizer, model) == token_id


def settings_path(model: str | Path) -> Path:
    return Path(model) / LASER_CONFIG


def _checked_json(path: Path) -> dict:
    """A laser_config.json as it is stored ({} when there is none), every field of `ModelSettings` type-checked."""
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LaserInputError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(stored, dict):
        raise LaserInputError(f"{path}: expected a JSON object")
    for field in dataclasses.fields(ModelSettings):
        value = stored.get(field.name)
        if value is not None and not _has_type(value, field.type):
            raise LaserInputError(f"{path}: field '{field.name}' has the wrong type ({value!r})")
    if "{problem}" not in (stored.get("prompt_template") or "{problem}"):
        raise LaserInputError(f"{path}: field 'prompt_template' must contain {{problem}}")
    return stored


def _has_type(value: object, annotation: str) -> bool:
    """Whether a JSON value fits a field annotated `annotation` ("float | None", ...); bool is no number."""
    if isinstance(value, bool):
        return "bool" in annotation
    kinds = {"str": str, "int": int, "float": (int, float), "bool": bool}
    return any(isinstance(value, kind) for name, kind in kinds.items() if name in annotation.split(" | "))
