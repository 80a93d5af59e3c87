"""`LaserConfig`: TRL's `GRPOConfig` plus the LaSeR knobs, defaults as in the paper."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

DEFAULT_REWARD_TOKEN = "<|vision_start|>"  # Qwen2.5's, as the authors


@dataclass
class LaserConfig(GRPOConfig):
    r"""Configuration of [`LaserGRPOTrainer`]: every field of `GRPOConfig`, plus the fields below.

    Defaults are the paper's (arXiv 2510.14943, its verl scripts): alpha = beta_v = tau = T = 0.1,
    class-balanced loss, 200 + 200 warm-up steps, reward token `<|vision_start|>` (Qwen2.5).

    Parameters:
        reward_token (`str` or `None`): the token z_c whose log-prob right after the EOS is the
            self-reward score, as a token string (`"<|vision_start|>"`) or an id (`"151652"`). It
            must be a single token of the tokenizer that the data never uses. `None`: the model
            folder's laser_config.json, else `<|vision_start|>`.
        c_ref (`float` or `None`): the constant log pi_ref(z_c | x, y) (`laser calibrate` measures
            it; about -23 for Qwen2.5-7B). `None`: the model folder's laser_config.json when it was
            calibrated for the same token, else an exact mode reads it from a frozen reference
            model at every step, at the cost of one more forward pass.
        self_reward_loss_coef (`float`): alpha, weight of the self-reward MSE in the loss.
        self_reward_beta (`float`): beta_v, r_s = beta_v * (log pi(z_c | x, y) - c_ref).
        self_reward_class_balance (`bool`): weight the MSE by N / (2 N_class) per class.
        self_rewarding_advantage_coef (`float`): tau, A = (1 - tau) A_v + tau A_s.
        self_rewarding_std_threshold (`float`): T; a group whose clipped scores have a std <= T
            keeps the verifier advantages.
        reasoning_warmup_steps (`int`): steps of plain RLVR before the MSE is added.
        self_reward_warmup_steps (`int`): steps with the MSE before the advantages are mixed.
    """

    reward_token: str | None = field(
        default=None,
        metadata={
            "help": "Reward token z_c, as a token string or an id; a single token the data never uses. Default: the "
            f"model folder's laser_config.json (from `laser calibrate --save`), else {DEFAULT_REWARD_TOKEN}."
        },
    )
    c_ref: float | None = field(
        default=None,
        metadata={
            "help": "Constant log pi_ref(z_c | x, y), e.g. -23 for Qwen2.5 (see `laser calibrate`). Default: the "
            "model folder's laser_config.json when calibrated for the same token, else it is read from a frozen "
            "reference model at every step (exact mode, one more forward pass)."
        },
    )
    self_reward_loss_coef: float = field(default=0.1, metadata={"help": "alpha: weight of the self-reward MSE."})
    self_reward_beta: float = field(
        default=0.1, metadata={"help": "beta_v: r_s = beta_v * (log pi(z_c | x, y) - c_ref)."}
    )
    self_reward_class_balance: bool = field(
        default=True, metadata={"help": "Weight the MSE by N / (2 N_class) over the generation batch."}
    )
    self_rewarding_advantage_coef: float = field(
        default=0.1, metadata={"help": "tau: advantages are (1 - tau) A_verifier + tau A_self_reward."}
    )
    self_rewarding_std_threshold: float = field(
        default=0.1, metadata={"help": "T: groups whose clipped scores have std <= T keep the verifier advantages."}
    )
    reasoning_warmup_steps: int = field(
        default=200, metadata={"help": "Steps of plain RLVR before the self-reward MSE is added."}
    )
    self_reward_warmup_steps: int = field(
        default=200, metadata={"help": "Steps with the MSE before self-rewarding advantages are mixed in."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.reward_token is not None:
            self.reward_token = str(self.reward_token)  # YAML reads a bare id as an int
        if self.c_ref is not None and self.c_ref > 0:
            raise ValueError(f"c_ref must be a log-probability (<= 0), got {self.c_ref}")
        for name in ("self_reward_loss_coef", "self_reward_beta", "self_rewarding_std_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.self_reward_beta == 0 and self.self_reward_loss_coef > 0:
            raise ValueError("self_reward_beta must be > 0 when self_reward_loss_coef > 0")
        tau = self.self_rewarding_advantage_coef
        if not 0 <= tau <= 1:
            raise ValueError(f"self_rewarding_advantage_coef must be in [0, 1], got {tau}")
        for name in ("reasoning_warmup_steps", "self_reward_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
