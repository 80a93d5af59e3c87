"""`LaserGRPOTrainer`: TRL's GRPOTrainer plus LaSeR's last-token self-reward.

What changes against GRPO, and where:
- `_get_per_token_logps_and_entropies`: every forward also reads log pi(z_c | x, y, EOS), untempered:
  z_c is written after each EOS as one more label of TRL's fused LM head. It is the same forward
  and the same head call that give the policy-gradient log-probs: the score costs one label per
  completion, not a second pass.
- `_generate_and_score_completions`: keeps the verifier rewards (TRL only returns advantages),
  computes the class-balance weights over the whole generation batch of every process, and in
  the last phase mixes self-rewarding advantages into the GRPO advantages.
- `_compute_loss`: adds alpha * class-balanced MSE(r_s, r_v) to the GRPO loss and logs the
  self-verification metrics.
"""

from __future__ import annotations

import copy
import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
import trl
from accelerate.utils import gather
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedModel
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging
from trl import GRPOTrainer
from trl.models.utils import prepare_deepspeed, prepare_fsdp
from trl.trainer.utils import add_fused_lm_head, use_adapter

from laser_rl.config import LaserConfig
from laser_rl.core import (
    LaserPhase,
    class_balance_weights,
    laser_phase,
    place_reward_token,
    reward_token_positions,
    score_level,
    self_reward_mse,
    self_reward_scores,
    self_rewarding_advantages,
)
from laser_rl.generation import RewardTokenRecorder
from laser_rl.metrics import self_verification_metrics
from laser_rl.model_settings import ModelSettings
from laser_rl.models import resolve_model
from laser_rl.optim import scale_row_updates
from laser_rl.probe import SelfVerificationProbe, load_probe
from laser_rl.prompts import prompt_settings
from laser_rl.tokens import DEFAULT_REWARD_TOKEN, resolve_reward_token
from laser_rl.vllm_cpu import loadable_cpu_weights

logger = logging.get_logger(__name__)

# Keys of a generation batch that `_get_per_token_logps_and_entropies` takes for multimodal models.
_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)
# Those of them that hold one entry per token: they grow with the column z_c may need.
_PER_TOKEN_KEYS = ("token_type_ids", "mm_token_type_ids")


class LaserGRPOTrainer(GRPOTrainer):
    """GRPO with LaSeR's self-reward loss and self-rewarding advantages.

    Takes the arguments of `trl.GRPOTrainer`; `args` is a [`LaserConfig`]. The reward functions
    give the verifier reward r_v (their weighted sum, in [0, 1]), e.g. `laser_rl.math_reward`.
    `model` may also be a `.gguf` file or a name from `laser_rl.models.MODELS`.

    A `reward_token` left unset in `args` is read from the model folder's laser_config.json (written
    by `laser calibrate --save` or by an earlier LaSeR run) and set in `args`; so is c_ref when
    `args.c_ref` is "auto", else it is measured on the first generation batch (`self.c_ref`); so are
    `args.prompt_template` and `args.chat`. Every save (checkpoints and `save_model`) writes
    laser_config.json with z_c, c_ref, beta_v and the prompt settings, so that the saved model carries
    what scoring it needs.
    """

    _tag_names = ["trl", "grpo", "laser"]
    _name = "LaSeR"
    _paper = {
        "title": "LaSeR: Reinforcement Learning with Last-Token Self-Rewarding",
        "id": "2510.14943",
        "citation": textwrap.dedent("""\
            @inproceedings{yang2026laser,
                title        = {{LaSeR: Reinforcement Learning with Last-Token Self-Rewarding}},
                author       = {Wenkai Yang and Weijie Liu and Ruobing Xie and Yiju Guo and Lulu Wu and
                                Saiyong Yang and Yankai Lin},
                booktitle    = {International Conference on Learning Representations},
                year         = 2026,
                eprint       = {arXiv:2510.14943},
            }"""),
    }

    def __init__(
        self,
        model: str | PreTrainedModel,
        reward_funcs=None,
        args: LaserConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        reward_processing_classes=None,
        callbacks=None,
        optimizers=(None, None),
        quantization_config=None,
        peft_config=None,
        tools=None,
        rollout_func=None,
        environment_factory=None,
    ):
        # GRPOTrainer's signature, argument for argument (tests/test_trainer.py compares the two).
        if isinstance(model, str):
            model = resolve_model(model)
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = LaserConfig(f"{name.split('/')[-1]}-LaSeR")
        if not isinstance(args, LaserConfig):
            raise TypeError(f"args must be a LaserConfig, got {type(args).__name__}")
        model_folder = model if isinstance(model, str) else model.config._name_or_path
        stored = ModelSettings.read(model_folder)
        token_from_file = args.reward_token is None and stored.reward_token is not None
        args.reward_token = args.reward_token or stored.reward_token or DEFAULT_REWARD_TOKEN
        args.prompt_template = args.prompt_template or stored.prompt_template
        args.chat = stored.chat if args.chat is None else args.chat
        self.exact_mode = args.c_ref == "exact"
        # Exact mode needs pi_ref; copy the policy before GRPOTrainer patches and wraps it.
        is_peft = peft_config is not None or hasattr(model, "peft_config")
        needs_reference = self.exact_mode and args.beta == 0.0 and not is_peft
        reference = copy.deepcopy(model) if needs_reference and isinstance(model, PreTrainedModel) else None
        colocated_on_cpu = args.use_vllm and args.vllm_mode == "colocate" and not torch.cuda.is_available()
        with loadable_cpu_weights() if colocated_on_cpu else nullcontext():  # see laser_rl.vllm_cpu
            super().__init__(
                model,
                reward_funcs,
                args,
                train_dataset,
                eval_dataset,
                processing_class,
                reward_processing_classes,
                callbacks,
                optimizers,
                quantization_config,
                peft_config,
                tools,
                rollout_func,
                environment_factory,
            )
        if token_from_file:
            self.reward_token_id = stored.token_id(self._tokenizer, model_folder)
        else:
            self.reward_token_id = resolve_reward_token(self._tokenizer, args.reward_token)
        # The constant c_ref: given, or calibrated for this z_c, or (None) to be measured on the first batch.
        self.c_ref: float | None = args.c_ref if isinstance(args.c_ref, float) else None
        if args.c_ref == "auto" and stored.measured_for(self.reward_token_id, self._tokenizer, model_folder):
            self.c_ref = stored.reference_c_ref
        self.pad_token_id = self._tokenizer.pad_token_id
        self._suppress_reward_token()
        _check_untempered_score_is_exact(self.accelerator.unwrap_model(self.model), self.temperature)
        if needs_reference:
            self.ref_model = self._prepare_reference(reference)
        # (per-token log-probs returned to TRL, log pi(z_c) (B,), completion ids (B, T)) of each forward since
        # the last reset: a rollout score is found by the identity of the tensor TRL stores under a name
        # (`_reward_token_logps_of`), the loss's by the completions it was computed on.
        self._forward_scores: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        # (sampled ids of each row, log pi(z_c) (B,), NaN unread) of the last `generate`: paired by those ids
        self._generation_scores: tuple[list[list[int]], torch.Tensor] | None = None
        self._extra_forwards = 0  # forwards added to score this generation batch (logged: laser/extra_forwards)
        self._missed: set[str] = set()  # lookups that missed, each warned about once
        self._rewards_per_func: torch.Tensor | None = None
        # Exact mode: sum and count of the reference's log pi_ref(z_c) over finished rollouts, so that a
        # saved model carries a c_ref to be scored with.
        self._reference_logp_sum, self._reference_logp_count = 0.0, 0
        self._c_ref_waiting = False  # c_ref: auto has said once that no rollout has finished yet
        self._row_scaled = False  # z_c's row's updates scaled (reward_token_lr_scale), once per optimizer
        # (scores, r_v, MSE weights, finished) of the generation batch's micro-batches seen so far, gathered
        self._verification_rows: list[list[torch.Tensor]] = []

    def _suppress_reward_token(self) -> None:
        """z_c is never sampled in a rollout: a solution that wrote it would corrupt its own score (inference
        suppresses it too, `laser_rl.generation`)."""
        if self.use_vllm:  # SamplingParams has no suppress_tokens; -100 is vLLM's logit_bias floor
            kwargs = self.vllm_generation.generation_kwargs
            kwargs["logit_bias"] = {**(kwargs.get("logit_bias") or {}), self.reward_token_id: -100.0}
            return
        suppressed = [*(self.generation_config.suppress_tokens or []), self.reward_token_id]
        self.generation_config.suppress_tokens = suppressed
        self.generation_kwargs["suppress_tokens"] = suppressed  # TRL sets these on the unwrapped model too

    # --- the score, from the forward that computes the policy log-probs ---------------------------

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, **kwargs
    ):
        prompt_length = input_ids.size(1) - logits_to_keep
        completion_ids, completion_mask = input_ids[:, prompt_length:], attention_mask[:, prompt_length:]
        eos_index, finished = reward_token_positions(completion_ids, completion_mask, self.eos_token_ids)
        # z_c written after each EOS becomes one more label of TRL's fused LM head, so the score costs
        # no extra LM-head call: one forward, one head backward, one label per completion.
        placed_ids, placed_mask, _ = place_reward_token(
            completion_ids, completion_mask, self.reward_token_id, self.eos_token_ids, self.pad_token_id
        )
        if not placed_mask[:, -1].any():  # no z_c in the extra column: leave the sequence length as it was
            placed_ids, placed_mask = placed_ids[:, :-1], placed_mask[:, :-1]
        extra = placed_ids.size(1) - logits_to_keep
        per_token_kwargs = {k: F.pad(kwargs[k], (0, extra)) for k in _PER_TOKEN_KEYS if kwargs.get(k) is not None}
        with self._reward_token_readout(model):
            logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(
                model,
                torch.cat([input_ids[:, :prompt_length], placed_ids], dim=1),
                torch.cat([attention_mask[:, :prompt_length], placed_mask], dim=1),
                placed_ids.size(1),
                batch_size,
                compute_entropy,
                **{**kwargs, **per_token_kwargs},
            )
        slot = (eos_index + 1).clamp(max=placed_ids.size(1) - 1).unsqueeze(1)  # clamped: truncated rows
        reward_token_logps = logps.gather(1, slot).squeeze(1).masked_fill(~finished, 0.0)
        # Give TRL exactly what it asked for: z_c's entries cleared, the extra column dropped.
        placed = placed_mask.bool() & ~F.pad(completion_mask, (0, extra)).bool()
        logps = logps.masked_fill(placed, 0.0)[:, :logits_to_keep]
        if entropies is not None:
            entropies = entropies.masked_fill(placed, 0.0)[:, :logits_to_keep]
        self._forward_scores.append((logps, reward_token_logps, completion_ids))
        return logps, entropies, aux_loss

    def _reward_token_logps_of(self, per_token_logps: torch.Tensor | None) -> torch.Tensor | None:
        """log pi(z_c) (B,) of the forward that returned `per_token_logps` (this very tensor), else None.

        TRL keeps the log-probs of its rollout forwards under names ("old_per_token_logps",
        "ref_per_token_logps"); looking the score up by the identity of that tensor pairs it with the
        forward that gave it, whatever the number and order of TRL's forwards.
        """
        for logps, reward_token_logps, _ in self._forward_scores:
            if logps is per_token_logps:
                return reward_token_logps
        return None

    def _missed_lookup(self, what: str) -> None:
        """Say once that a score could not be paired with `what` and is recomputed by an extra forward."""
        if what not in self._missed:
            self._missed.add(what)
            logger.warning(
                f"laser-rl could not pair the self-reward score with {what} (TRL {trl.__version__} may copy or "
                "move that tensor): it is recomputed with an extra forward, counted in laser/extra_forwards"
            )

    @contextmanager
    def _reward_token_readout(self, model) -> Iterator[None]:
        """Within this context, the hidden states that the fused head reads z_c from are untempered, and pass
        back `self_reward_body_grad_scale` of their gradient.

        Those are the hidden states one position before each z_c written into the chunk's input ids (the
        EOS): found in each forward's own input, so the pairing holds however TRL chunks and orders the
        batch (z_c is never sampled nor in a prompt). The fused head divides the logits by the temperature;
        multiplying those hidden states by it first undoes that, exactly for a head without bias or
        softcapping (checked in `__init__`). Only the predictions of z_c read those hidden states (the EOS
        itself is predicted one earlier), so scaling their gradient scales the self-reward loss's gradient
        into the body, and nothing else; z_c's row of the head still gets all of it.
        """
        body_scale = self.args.self_reward_body_grad_scale
        if self.temperature == 1.0 and body_scale == 1.0:
            yield
            return

        def read_out(module, args, kwargs, output):
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            if input_ids is None:
                raise RuntimeError("the model's forward got no input_ids: laser-rl cannot find where z_c is read")
            hidden = output.last_hidden_state
            at_eos = F.pad(input_ids[:, 1:] == self.reward_token_id, (0, 1)).unsqueeze(-1)
            if body_scale != 1.0:  # same values, `body_scale` of the gradient
                hidden = torch.where(at_eos, body_scale * hidden + (1 - body_scale) * hidden.detach(), hidden)
            output.last_hidden_state = torch.where(at_eos, hidden * self.temperature, hidden)
            return output

        base_model = _causal_lm(self.accelerator.unwrap_model(model)).base_model
        handle = base_model.register_forward_hook(read_out, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL turns rewards into advantages and drops them; LaSeR needs r_v itself.
        self._rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._rewards_per_func

    # --- generation batch: the rollout's scores, weights, advantage mixing ---------------------------

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        """TRL's generation; with the HF backend, the rollout's log pi(z_c | x, y, EOS) is read on the way
        (`RewardTokenRecorder`) when this batch needs it, so no forward is added to score the rollout.

        vLLM, continuous batching and tool loops are left as they are: their rollout scores come from a
        forward (`_rollout_reward_token_logps`)."""
        arguments = (prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        reads_scores = not (self.use_vllm or self.use_transformers_continuous_batching or self.tools)
        if not (reads_scores and self._needs_rollout_scores()):
            return super()._generate_single_turn(*arguments)
        eos = torch.tensor(self.eos_token_ids, device=self.accelerator.device)
        recorder = RewardTokenRecorder(self.reward_token_id, eos)
        with recorder.attached(_causal_lm(self.accelerator.unwrap_model(self.model))):
            completion_ids, logprobs = super()._generate_single_turn(*arguments)
        self._generation_scores = (completion_ids, recorder.logps)
        return completion_ids, logprobs

    def _needs_rollout_scores(self) -> bool:
        """Whether this generation batch needs the rollout's r_s: to mix advantages, or to measure c_ref."""
        args: LaserConfig = self.args
        phase = laser_phase(self.state.global_step, args.reasoning_warmup_steps, args.self_reward_warmup_steps)
        mixing = phase == LaserPhase.SELF_REWARDING_ADVANTAGES and args.self_rewarding_advantage_coef > 0
        measuring = not self.exact_mode and self.c_ref is None and self.model.training  # never on an eval batch
        return mixing or measuring

    def _generate_and_score_completions(self, inputs):
        self._forward_scores.clear()
        self._generation_scores, self._extra_forwards = None, 0
        needs_rollout_scores = self._needs_rollout_scores()  # before the step's state can change
        output = super()._generate_and_score_completions(inputs)

        args: LaserConfig = self.args
        mode = "train" if self.model.training else "eval"
        local = len(output["completion_ids"])
        process_slice = slice(self.accelerator.process_index * local, (self.accelerator.process_index + 1) * local)
        weights = self.reward_weights.to(self._rewards_per_func.device)
        verifier_rewards = (self._rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)  # every process's batch
        _, finished = reward_token_positions(output["completion_ids"], output["completion_mask"], self.eos_token_ids)
        all_finished = gather(finished)
        # A solution no verifier could judge (every reward None/NaN) has no r_v to learn: out of the MSE.
        judged = all_finished & ~torch.isnan(self._rewards_per_func).all(dim=1)
        if args.self_reward_class_balance:
            mse_weights = class_balance_weights(verifier_rewards, judged)
        else:
            mse_weights = judged.float()
        # Pre-divided by N, the judged finished count of the whole generation batch, so shards add up.
        mse_weights = mse_weights / judged.sum().clamp(min=1)
        output["verifier_rewards"] = verifier_rewards[process_slice]
        output["self_reward_weights"] = mse_weights[process_slice]

        rollout_logps = self._rollout_reward_token_logps(output, finished) if needs_rollout_scores else None
        if self.exact_mode:
            reference_logps = self._reward_token_logps_of(output.get("ref_per_token_logps"))
            if reference_logps is None and output.get("ref_per_token_logps") is not None:
                self._missed_lookup("TRL's reference forward (ref_per_token_logps)")
            if reference_logps is None:  # TRL ran no reference forward (beta = 0), or the lookup missed: run it
                reference_logps = self._forward_reward_token_logps(output, finished, reference=True)
            output["reference_reward_token_logps"] = reference_logps
            if mode == "train":
                self._reference_logp_sum += gather(reference_logps.masked_fill(~finished, 0.0)).sum().item()
                self._reference_logp_count += int(all_finished.sum().item())
        elif self.c_ref is None and mode == "train":
            self._measure_c_ref(rollout_logps, all_finished)
        if self.c_ref is not None:
            self._metrics[mode]["laser/c_ref"].append(self.c_ref)
        self._metrics[mode]["laser/extra_forwards"].append(float(self._extra_forwards))

        phase = laser_phase(self.state.global_step, args.reasoning_warmup_steps, args.self_reward_warmup_steps)
        self._metrics[mode]["laser/phase"].append(float(phase))
        if phase == LaserPhase.SELF_REWARDING_ADVANTAGES and args.self_rewarding_advantage_coef > 0:
            scores = self._scores(rollout_logps, output)
            num_generations = self.num_generations if mode == "train" else self.num_generations_eval
            advantages, mixed = self_rewarding_advantages(
                gather(output["advantages"]),
                gather(scores),
                judged,  # an unjudged solution's score counts as a truncated one's: 0
                num_generations,
                args.self_rewarding_std_threshold,
                args.self_rewarding_advantage_coef,
            )
            # no verifier could judge it: advantage 0, as TRL gives it in the verifier's advantages
            unjudged = torch.isnan(self._rewards_per_func).all(dim=1)
            output["advantages"] = advantages.masked_fill(unjudged, 0.0)[process_slice]
            self._metrics[mode]["laser/mixed_groups"].append(mixed.float().mean().item())
        return output

    def _measure_c_ref(self, rollout_logps: torch.Tensor, all_finished: torch.Tensor) -> None:
        """c_ref: auto, measured once, on the first training batch with a finished solution: at step 0 the
        policy is pi_ref, so this is the paper's mean of log pi_ref(z_c | x, y) over its own solutions.

        Args:
            rollout_logps: (B,) this process's log pi(z_c), 0 where truncated.
            all_finished: (B * processes,) bool, the gathered batch's finished rows.
        """
        step = self.state.global_step
        if not all_finished.any():
            if not self._c_ref_waiting:
                logger.warning(
                    f"c_ref: auto waits for a finished solution: none of step {step}'s rollouts ends with an EOS "
                    f"within max_completion_length={self.max_completion_length}; until then the self-reward loss is 0"
                )
                self._c_ref_waiting = True
            return
        self.c_ref = gather(rollout_logps).sum().item() / all_finished.sum().item()
        if step > 0:
            logger.warning(f"c_ref: auto measured at step {step} ({self.c_ref:.3f}), from a policy already trained")

    def _rollout_reward_token_logps(self, batch: dict, finished: torch.Tensor) -> torch.Tensor:
        """log pi(z_c | x, y, EOS) (B,) of the rollout under the policy that sampled it (0 where truncated).

        From TRL's old-policy forward when it ran one (vLLM's importance sampling, or generation out of
        step with the optimizer), else as read during generation; rows still unscored (an EOS at the
        batch's last decoding step, or a backend that reads nothing) get a forward of those rows only.
        """
        logps = self._reward_token_logps_of(batch.get("old_per_token_logps"))
        if logps is None and batch.get("old_per_token_logps") is not None:
            self._missed_lookup("TRL's old-policy forward (old_per_token_logps)")
        if logps is None:
            logps = self._generation_reward_token_logps(batch, finished)
            missing = finished & logps.isnan()
            if missing.any():
                logps = torch.where(missing, self._forward_reward_token_logps(batch, missing, reference=False), logps)
        return logps.masked_fill(~finished, 0.0)

    def _generation_reward_token_logps(self, batch: dict, finished: torch.Tensor) -> torch.Tensor:
        """log pi(z_c) (B,) read during generation for each row of `batch` whose completion is the one sampled
        in that row (compared id by id); NaN for the rest."""
        logps = torch.full(finished.shape, torch.nan, device=finished.device)
        if not self._generation_scores or not self._generation_scores[0]:  # nothing read (vLLM, tools, not needed)
            return logps
        sampled, recorded = self._generation_scores
        ids = batch["completion_ids"].masked_fill(~batch["completion_mask"].bool(), -1)
        rows = min(len(sampled), len(ids))
        sampled_ids = pad_sequence([torch.tensor(row) for row in sampled[:rows]], batch_first=True, padding_value=-1)
        width = max(ids.size(1), sampled_ids.size(1))  # -1 past each row's end on both sides
        same = (
            F.pad(ids[:rows], (0, width - ids.size(1)), value=-1)
            == F.pad(sampled_ids.to(ids.device), (0, width - sampled_ids.size(1)), value=-1)
        ).all(dim=1)
        logps[:rows] = torch.where(same, recorded[:rows].to(logps.device), logps[:rows])
        if (finished & logps.isnan() & F.pad(~same, (0, len(logps) - rows), value=True)).any():
            self._missed_lookup("the completions scored during generation")
        return logps

    @torch.no_grad()
    def _forward_reward_token_logps(self, batch: dict, rows: torch.Tensor, reference: bool) -> torch.Tensor:
        """log pi(z_c | x, y, EOS) (B,) of the rollout's `rows` ((B,) bool, finished ones), from a forward of
        those rows under the policy or the reference model; 0 elsewhere. A multimodal batch is run whole
        (its image inputs do not split by row)."""
        forward_kwargs = {key: batch[key] for key in _FORWARD_KEYS if key in batch}
        run = torch.ones_like(rows) if forward_kwargs else rows
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)[run]
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)[run]
        model, context = self.model, nullcontext()
        if reference and self.ref_model is not None:
            model = self.ref_model
        elif reference:  # PEFT: the base model is the reference
            unwrapped = self.accelerator.unwrap_model(self.model)
            context = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        batch_size = self.args.per_device_train_batch_size if self.model.training else None
        self._extra_forwards += 1
        with context:
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                batch["completion_ids"].size(1),
                batch_size=batch_size or self.args.per_device_eval_batch_size,
                **forward_kwargs,
            )
        return torch.zeros(rows.shape, device=logps.device).masked_scatter(
            rows, self._reward_token_logps_of(logps)[rows[run]]
        )

    def _scores(self, logps: torch.Tensor, batch: dict) -> torch.Tensor:
        """r_s (B,) from log pi(z_c) (B,), against c_ref or the reference model's log-probs, plus the initial
        score."""
        if self.exact_mode:
            reference = batch["reference_reward_token_logps"]
        else:  # c_ref unmeasured means no solution has finished yet: every score has weight 0
            reference = 0.0 if self.c_ref is None else self.c_ref
        args: LaserConfig = self.args
        return self_reward_scores(logps, reference, args.self_reward_beta) + args.self_reward_initial_score

    # --- loss ----------------------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        self._forward_scores.clear()
        loss = super()._compute_loss(model, inputs)
        # the score must come from the forward the loss backpropagates through: the one of these completions
        paired = [logps for _, logps, ids in self._forward_scores if torch.equal(ids, inputs["completion_ids"])]
        if len(paired) != 1:
            raise RuntimeError(
                f"GRPOTrainer._compute_loss ran {len(paired)} forwards of this micro-batch's completions where "
                f"laser-rl expects the policy's one; this TRL version ({trl.__version__}) is not supported "
                "(see constraints.txt)"
            )
        scores = self._scores(paired[0], inputs)
        args: LaserConfig = self.args
        mode = "train" if self.model.training else "eval"
        phase = laser_phase(self.state.global_step, args.reasoning_warmup_steps, args.self_reward_warmup_steps)
        weights, verifier_rewards = inputs["self_reward_weights"], inputs["verifier_rewards"]
        if phase >= LaserPhase.SELF_REWARD and args.self_reward_loss_coef > 0:
            # Each process holds a shard of each micro-batch of the generation batch; DDP averages the
            # processes' gradients and the optimizer step sums the accumulated micro-batches.
            scale = self.accelerator.num_processes
            if mode == "train":
                scale *= args.steps_per_generation / self.current_gradient_accumulation_steps
            if mode == "train" and args.self_reward_level_fit > 0:
                scores = scores - self._fit_level(scores.detach(), verifier_rewards, weights)
            mse = self_reward_mse(scores, verifier_rewards, weights, 1, args.self_reward_level_weight)
            loss = loss + args.self_reward_loss_coef * scale * mse
        self._log_self_verification(mode, scores.detach(), inputs)
        return loss

    def _fit_level(self, scores: torch.Tensor, verifier_rewards: torch.Tensor, weights: torch.Tensor) -> float:
        """`self_reward_level_fit`: move c_ref by that share of this micro-batch's level error (over every
        process) and return the shift of the scores, r_s -> r_s - shift. A micro-batch with one class only
        leaves it: its balanced level would pull every score to that class's target.

        Args:
            scores: (B,) r_s, detached; verifier_rewards: (B,) r_v; weights: (B,) the MSE's weights.
        """
        scores, verifier_rewards, weights = gather(scores), gather(verifier_rewards), gather(weights)
        correct = verifier_rewards[weights > 0] > 0.5
        if self.c_ref is None or correct.all() or not correct.any():
            return 0.0
        args: LaserConfig = self.args
        shift = args.self_reward_level_fit * score_level(scores, verifier_rewards, weights).item()
        self.c_ref += shift / args.self_reward_beta  # r_s = beta_v (log pi(z_c) - c_ref) + initial score
        return shift

    def _log_self_verification(self, mode: str, scores: torch.Tensor, inputs: dict) -> None:
        """Self-verification metrics into TRL's logs, over the whole generation batch of every process: the
        micro-batches are gathered and kept until the batch is complete (an AUROC does not average)."""
        _, finished = reward_token_positions(inputs["completion_ids"], inputs["completion_mask"], self.eos_token_ids)
        rows = (scores, inputs["verifier_rewards"].float(), inputs["self_reward_weights"], finished)
        self._verification_rows.append([gather(x) for x in rows])
        batch_rows = self.args.generation_batch_size if mode == "train" else 0  # eval: one call is one batch
        if sum(len(seen[0]) for seen in self._verification_rows) < batch_rows:
            return
        batch = (torch.cat(x) for x in zip(*self._verification_rows, strict=True))
        scores, verifier_rewards, weights, finished = batch
        self._verification_rows.clear()
        if weights.sum() > 0:  # weights are pre-divided by the batch's count: their sum is 1 over a full batch
            mse = (weights * (scores - verifier_rewards) ** 2).sum() / weights.sum()
            self._metrics[mode]["laser/self_reward_mse"].append(mse.item())
        scores, verifier_rewards = scores[finished], verifier_rewards[finished]
        correct = verifier_rewards > 0.5
        values = {
            "score_correct_mean": scores[correct].mean().item() if correct.any() else float("nan"),
            "score_wrong_mean": scores[~correct].mean().item() if (~correct).any() else float("nan"),
            **self_verification_metrics(scores, verifier_rewards),
        }
        for name, value in values.items():
            if value == value:  # NaN where a class is absent: leave it out of the log
                self._metrics[mode][f"laser/{name}"].append(value)

    # --- optimizer: z_c's read-out row at its own learning rate ------------------------------------------

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        scale = self.args.reward_token_lr_scale
        if scale != 1 and not self._row_scaled:
            head = _causal_lm(self.accelerator.unwrap_model(self.model)).get_output_embeddings().weight
            if self.is_deepspeed_enabled or self.is_fsdp_enabled or not head.requires_grad:
                raise ValueError(
                    "reward_token_lr_scale needs the LM head trained and whole on each process: not frozen (PEFT) "
                    "nor sharded (DeepSpeed, FSDP); leave it at 1 there"
                )
            scale_row_updates(optimizer, head, self.reward_token_id, scale)
            self._row_scaled = True
        return optimizer

    # --- saving and resuming: the model folder carries what scoring it needs ---------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """TRL's `train`; `resume_from_checkpoint=True` takes the last *complete* checkpoint of
        `output_dir` (see `last_complete_checkpoint`), where transformers would take the last one."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"resume_from_checkpoint: no complete checkpoint in {self.args.output_dir}")
        fitted = self.args.self_reward_level_fit > 0
        if resume_from_checkpoint and not self.exact_mode and (fitted or not isinstance(self.args.c_ref, float)):
            # c_ref: auto was measured at the start of the run, and a fitted level moves it as the run goes;
            # a resumed run takes it from its checkpoint.
            stored = ModelSettings.read(resume_from_checkpoint)
            if stored.c_ref is not None:
                self.c_ref = stored.reference_c_ref
        probing = any(isinstance(c, SelfVerificationProbe) for c in self.callback_handler.callbacks)
        if self.args.probe_file and not probing:
            self.add_callback(self._self_verification_probe())  # read before any step: a bad file stops here
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _self_verification_probe(self) -> SelfVerificationProbe:
        """The held-out probe of `args.probe_file`, prompted as the training data is (`args.prompt_template`
        and `args.chat`, else the defaults)."""
        template, chat = prompt_settings(self._tokenizer, ModelSettings(), self.args.prompt_template, self.args.chat)
        eos = self.eos_token_ids[0]
        probe = load_probe(self.args.probe_file, self._tokenizer, eos, template, chat)
        return SelfVerificationProbe(
            self, probe, self.reward_token_id, lambda: self.model_settings().c_ref, self.args.self_reward_beta,
            self.args.probe_steps, self.args.per_device_eval_batch_size,
        )  # fmt: skip

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            self.model_settings().write(output_dir or self.args.output_dir)

    def model_settings(self) -> ModelSettings:
        """What laser_config.json holds for this model: z_c, c_ref (moved by the initial score, see
        `ModelSettings.scored_with`), beta_v and the prompt settings. In exact mode the reference mean is that
        of log pi_ref(z_c | x, y) over the finished rollouts seen so far."""
        args: LaserConfig = self.args
        c_ref = self.c_ref
        if self.exact_mode and self._reference_logp_count:
            c_ref = self._reference_logp_sum / self._reference_logp_count
        return ModelSettings.scored_with(
            c_ref,
            args.self_reward_beta,
            args.self_reward_initial_score,
            reward_token=self._tokenizer.convert_ids_to_tokens(self.reward_token_id),
            reward_token_id=self.reward_token_id,
            prompt_template=args.prompt_template,
            chat=args.chat,
        )

    def _prepare_reference(self, reference: PreTrainedModel | None) -> torch.nn.Module:
        """A frozen copy of the initial policy for exact mode, placed like TRL places its ref model."""
        if reference is None:  # the policy was given by name: load it again
            reference = type(self.accelerator.unwrap_model(self.model)).from_pretrained(
                self.model.config._name_or_path, **(self.args.model_init_kwargs or {})
            )
        reference.requires_grad_(False).eval()
        add_fused_lm_head(reference, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(reference, self.accelerator)
        if self.is_fsdp_enabled:
            return prepare_fsdp(reference, self.accelerator)
        return self.accelerator.prepare_model(reference, evaluation_mode=True)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The `checkpoint-N` folder of `output_dir` with the highest N that was written to the end, or None.

    transformers writes trainer_state.json last into a checkpoint: a folder where it is missing or does
    not parse was cut off by a kill (or a full disk) and is passed over.
    """
    steps = {}
    for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if path.is_dir() and path.name.rsplit("-", 1)[1].isdigit():
            steps[path] = int(path.name.rsplit("-", 1)[1])
    for folder in sorted(steps, key=steps.get, reverse=True):
        try:
            json.loads((folder / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return str(folder)
    return None


def _check_untempered_score_is_exact(model: torch.nn.Module, temperature: float) -> None:
    """The score is untempered by scaling the EOS hidden state by the temperature, which the head must
    commute with: no bias, no logit softcapping (at temperature 1 there is nothing to undo)."""
    if temperature == 1.0:
        return
    causal_lm = _causal_lm(model)
    if causal_lm.get_output_embeddings().bias is not None:
        problem = "an LM head with a bias"
    elif getattr(causal_lm.config.get_text_config(), "final_logit_softcapping", None) is not None:
        problem = "final_logit_softcapping"
    else:
        return
    raise ValueError(
        f"temperature={temperature} with {problem}: the self-reward score must be untempered and cannot be "
        "read exactly from TRL's fused LM head; set temperature=1.0 (the paper's setting)"
    )


def _causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The causal LM under PEFT and distributed wrappers (its `.base_model` is the backbone)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
