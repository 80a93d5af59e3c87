"""`LaserConfig`: TRL's `GRPOConfig` plus the LaSeR knobs, defaults as in the paper."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from laser_rl.tokens import DEFAULT_REWARD_TOKEN

C_REF_MODES = ("auto", "exact")  # c_ref's values other than a number


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
        c_ref (`float` or `str`): the constant log pi_ref(z_c | x, y), as a number (`laser
            calibrate` measures it; about -23 for Qwen2.5-7B), or `"auto"` (the default): the model
            folder's laser_config.json when it was calibrated for the same token, else the mean
            over the finished solutions of the first generation batch, which the initial policy,
            pi_ref itself, wrote; it is logged as `laser/c_ref` and saved with the model. `"exact"`
            reads log pi_ref(z_c | x, y) of each solution from a frozen reference model at every
            step instead: one more forward pass, and a copy of the weights unless `beta > 0` or PEFT
            provides the reference. `None` means `"auto"`.
        self_reward_loss_coef (`float`): alpha, weight of the self-reward MSE in the loss.
        self_reward_beta (`float`): beta_v, r_s = beta_v * (log pi(z_c | x, y) - c_ref).
        self_reward_class_balance (`bool`): weight the MSE by N / (2 N_class) per class.
        self_rewarding_advantage_coef (`float`): tau, A = (1 - tau) A_v + tau A_s.
        self_rewarding_std_threshold (`float`): T; a group whose clipped scores have a std <= T
            keeps the verifier advantages.
        reasoning_warmup_steps (`int`): steps of plain RLVR before the MSE is added.
        self_reward_warmup_steps (`int`): steps with the MSE before the advantages are mixed.
        self_reward_initial_score (`float`): the score r_s of a solution the reference model wrote: the scores
            are beta_v (log pi(z_c) - c_ref) + this. 0 is the paper (every solution starts at the wrong class's
            target, and the MSE's first steps move every score together); 0.5 starts them at the class-balanced
            MSE's best constant. The saved laser_config.json stores c_ref - this / beta_v, the c_ref the scores
            are read with.
        self_reward_level_weight (`float`): weight of the MSE's level part, the error every score shares,
            against its difference part (see `core.self_reward_mse`; the two add up to the MSE). 1 is the
            paper. On a small model the level's gradient drowns the difference's and the score learns
            only the level (SmolLM2-135M); 0.01 lets the difference through (benchmarks/score_learning.py).
        self_reward_level_fit (`float`): 0 is the paper: c_ref stays the constant it was given or measured. Above 0,
            the scores' level is held by c_ref instead of by the model: on each training micro-batch that has right
            and wrong finished solutions, before the MSE is taken, c_ref moves by this share of the level error (the
            class-balanced mean of r_s - r_v, `core.score_level`), so the model's gradient learns only the
            difference between the scores; 1 fits the level afresh on every batch. The fitted c_ref is logged as
            `laser/c_ref` and saved with the model. Measured on SmolLM2-135M (docs/real-model.md, section 6): it
            holds each batch's level, but with nothing pulling the model's own level it drifts (c_ref moved 10
            nats in 50 steps), the saved c_ref misses the last update's drift, and the score ranked worse than
            without it (AUROC 0.62 against 0.67, seed 0). Try it where the level, not the ranking, is what fails.
            Not with `c_ref="exact"`.
        reward_token_lr_scale (`float`): learning-rate multiplier of z_c's row of the LM head, the linear
            read-out of the last hidden state that the score is (see `laser_rl.optim`). z_c is never an input,
            so the row changes nothing but the score. 1 is the paper; on a small model whose score learns the
            level and not the difference (SmolLM2-135M, docs/real-model.md), 1000 lets the read-out turn to where
            the body already encodes correctness within 50 steps, at the price of a level that swings from step to
            step; 100 steadies the level but its ranking learned on one seed of three. Needs the LM head trained
            and unsharded (not with PEFT, DeepSpeed or FSDP).
        self_reward_body_grad_scale (`float`): the share of the self-reward loss's gradient that reaches the
            model's body (every weight but z_c's LM-head row, through the hidden state at the EOS). 1 is the
            paper. On a small model the loss's first steps move every score together and swamp the policy
            gradient (SmolLM2-135M: alpha x MSE is 7x its norm at beta_v = 0.1); 0 trains the read-out
            alone, with `reward_token_lr_scale`, on the representation RL shapes.
        probe_file (`str` or `None`): a graded JSONL file of held-out solutions (`laser generate` then
            `laser grade`: problem, responses, acc_list) whose self-verification is measured at step 0
            and every `probe_steps` steps and logged as `probe/auroc`, `probe/f1`, `probe/ece`, ...
            (see `laser_rl.probe`): whether the score learns, on solutions RL does not choose.
        probe_steps (`int` or `None`): steps between probes; `None` means `logging_steps`.
        prompt_template (`str` or `None`), chat (`bool` or `None`): how the training prompts were made from
            problems (see `laser_rl.prompts`), saved with the model so that `laser generate` and `laser score`
            prompt it the same way. `None`: the model folder's laser_config.json, else not saved (the
            commands' defaults). `laser train` sets both.
    """

    reward_token: str | None = field(
        default=None,
        metadata={
            "help": "Reward token z_c, as a token string or an id; a single token the data never uses. Default: the "
            f"model folder's laser_config.json (from `laser calibrate --save`), else {DEFAULT_REWARD_TOKEN}."
        },
    )
    c_ref: str = field(
        default="auto",
        metadata={
            "help": "log pi_ref(z_c | x, y): a number (`laser calibrate` measures it; about -23 for Qwen2.5), 'auto' "
            "(the model folder's laser_config.json when calibrated for the same z_c, else measured on the first "
            "generation batch, the initial policy's own finished solutions) or 'exact' (each solution's, from a "
            "frozen reference model: one more forward per step)."
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

    self_reward_initial_score: float = field(
        default=0.0,
        metadata={
            "help": "Score of a reference solution: r_s = beta_v (log pi(z_c) - c_ref) + this (0: the paper; 0.5: "
            "the class-balanced MSE's best constant). Saved models store c_ref - this / beta_v."
        },
    )
    self_reward_level_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the MSE's level part (the error every score shares) against its difference part: "
            "1 the paper, 0.01 for a small model whose score learns only the level."
        },
    )
    self_reward_level_fit: float = field(
        default=0.0,
        metadata={
            "help": "Share of the scores' class-balanced level error that c_ref absorbs on each training batch with "
            "right and wrong solutions (0: the paper, c_ref constant; 1: the level refitted every batch, the model "
            "learns only the difference). Not with c_ref 'exact'."
        },
    )
    reward_token_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "Learning-rate multiplier of z_c's LM-head row, the score's read-out (1: the paper; 1000 for a "
            "small model whose score learns only the level). Not with PEFT, DeepSpeed or FSDP."
        },
    )
    self_reward_body_grad_scale: float = field(
        default=1.0,
        metadata={
            "help": "Share of the self-reward loss's gradient that reaches the body (all but z_c's LM-head row) "
            "through the EOS hidden state: 1 the paper, 0 the read-out alone."
        },
    )
    probe_file: str | None = field(
        default=None,
        metadata={
            "help": "Graded JSONL of held-out solutions (problem, responses, acc_list) whose self-verification "
            "(AUROC, F1, ECE) is logged as probe/* at step 0 and every probe_steps steps."
        },
    )
    probe_steps: int | None = field(
        default=None, metadata={"help": "Steps between two probes of probe_file; default: logging_steps."}
    )

    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt text in which {problem} is replaced by the problem and {choices} by its options (A. ...); "
            "other braces stay. Saved with the model. Default: the model folder's laser_config.json, else the "
            "step-by-step \\boxed{} prompt (laser_rl.prompts)."
        },
    )
    chat: bool | None = field(
        default=None,
        metadata={
            "help": "Send prompts as chat messages, so that TRL applies the tokenizer's chat template. Saved with the "
            "model. Default: the model folder's laser_config.json, else on when the tokenizer has a chat template."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.reward_token is not None:
            self.reward_token = str(self.reward_token)  # YAML reads a bare id as an int
        if self.c_ref is None:
            self.c_ref = "auto"
        if self.c_ref not in C_REF_MODES:
            try:
                self.c_ref = float(self.c_ref)
            except (TypeError, ValueError):
                raise ValueError(f"c_ref must be a number, 'auto' or 'exact', got {self.c_ref!r}") from None
            if self.c_ref > 0:
                raise ValueError(f"c_ref must be a log-probability (<= 0), got {self.c_ref}")
        for name in (
            "self_reward_loss_coef",
            "self_reward_beta",
            "self_rewarding_std_threshold",
            "self_reward_level_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.self_reward_beta == 0 and self.self_reward_loss_coef > 0:
            raise ValueError("self_reward_beta must be > 0 when self_reward_loss_coef > 0")
        tau = self.self_rewarding_advantage_coef
        if not 0 <= tau <= 1:
            raise ValueError(f"self_rewarding_advantage_coef must be in [0, 1], got {tau}")
        if self.reward_token_lr_scale <= 0:
            raise ValueError(f"reward_token_lr_scale must be > 0, got {self.reward_token_lr_scale}")
        if not 0 <= self.self_reward_initial_score < 1:
            raise ValueError(f"self_reward_initial_score must be in [0, 1), got {self.self_reward_initial_score}")
        if not 0 <= self.self_reward_level_fit <= 1:
            raise ValueError(f"self_reward_level_fit must be in [0, 1], got {self.self_reward_level_fit}")
        if self.self_reward_level_fit > 0 and self.c_ref == "exact":
            raise ValueError("self_reward_level_fit needs a constant c_ref to fit; c_ref 'exact' has none")
        if not 0 <= self.self_reward_body_grad_scale <= 1:
            raise ValueError(f"self_reward_body_grad_scale must be in [0, 1], got {self.self_reward_body_grad_scale}")
        if self.prompt_template is not None and "{problem}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain {{problem}}, got {self.prompt_template!r}")
        if self.probe_steps is not None and self.probe_steps < 1:
            raise ValueError(f"probe_steps must be >= 1, got {self.probe_steps}")
        for name in ("reasoning_warmup_steps", "self_reward_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
