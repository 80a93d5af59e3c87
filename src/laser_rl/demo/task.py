"""A synthetic verifiable reasoning task: multi-digit addition, worked column by column.

A problem ``4728+395`` is asked as ``"Q: 4728+395=\\nA:\\n"`` and solved one column at a time,
least significant digit first, each line stating the column sum and the carry it passes on::

    8+5=13 c1
    2+9+1=12 c1
    7+3+1=11 c1
    4+0+1=5 c0
    \\boxed{5123}

A slip in any line (a wrong digit sum, a wrong carry, a misread column) is visible in the
text and changes the boxed answer, which is what both the task's exact verifier and the
project's math-verify reward grade.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from datasets import Dataset

from laser_rl.grading import extract_last_boxed
from laser_rl.testing import EOS

Split = Literal["train", "test"]

# Operand lengths are drawn uniformly from this range, per operand: the difficulty knob. Fixed-width
# 3-digit operands are what the tiny CPU model learns within a minute (see warmstart.py).
DEFAULT_DIGITS = (3, 3)
# One problem in TEST_SHARE lands in the test split, by a stable hash of its text.
TEST_SHARE = 5


@dataclass(frozen=True)
class Problem:
    """``a + b`` with non-negative integer operands."""

    a: int
    b: int

    @property
    def text(self) -> str:
        """The problem string, e.g. ``"4728+395"``; the unit that splits are disjoint on."""
        return f"{self.a}+{self.b}"

    @property
    def prompt(self) -> str:
        """What the model sees; the solution follows it directly."""
        return f"Q: {self.text}=\nA:\n"

    @property
    def answer(self) -> str:
        """The exact answer, as it appears inside ``\\boxed{}``."""
        return str(self.a + self.b)

    @property
    def split(self) -> Split:
        """The split this problem belongs to; crc32 (not ``hash``) so it is stable across runs."""
        return "test" if zlib.crc32(self.text.encode()) % TEST_SHARE == 0 else "train"


def _random_operand(rng: random.Random, digits: tuple[int, int]) -> int:
    num_digits = rng.randint(*digits)
    low = 0 if num_digits == 1 else 10 ** (num_digits - 1)
    return rng.randint(low, 10**num_digits - 1)


def sample_problems(
    n: int,
    split: Split,
    seed: int = 0,
    digits: tuple[int, int] = DEFAULT_DIGITS,
) -> list[Problem]:
    """``n`` distinct problems of one split, the same for the same arguments.

    Each operand gets a number of digits drawn uniformly from ``digits`` (inclusive). The
    train and test splits never share a problem, whatever the seeds and sizes.

    Raises:
        ValueError: if ``digits`` is not a valid range or the split has fewer than ``n`` problems to draw.
    """
    if not 1 <= digits[0] <= digits[1]:
        raise ValueError(f"digits must be a range 1 <= low <= high, got {digits}")
    rng = random.Random(f"{seed}-{split}")
    problems: dict[str, Problem] = {}
    # Rejection sampling; the attempt cap only trips when the split is (nearly) exhausted.
    for _ in range(100 * n + 1000):
        if len(problems) == n:
            return list(problems.values())
        problem = Problem(_random_operand(rng, digits), _random_operand(rng, digits))
        if problem.split == split:
            problems.setdefault(problem.text, problem)
    raise ValueError(f"could not draw {n} distinct {split} problems with digits={digits}")


def columns(problem: Problem) -> list[tuple[int, int]]:
    """Digit pairs, least significant first, the shorter operand padded with zeros."""
    a, b = str(problem.a)[::-1], str(problem.b)[::-1]
    width = max(len(a), len(b))
    return [(int(a[i]) if i < len(a) else 0, int(b[i]) if i < len(b) else 0) for i in range(width)]


def _worked(problem: Problem, slip_column: int | None = None) -> str:
    """The column-by-column working; in ``slip_column`` the carry passed on is the wrong one, and the
    rest of the working follows that carry."""
    lines, digits, carry = [], [], 0
    for i, (x, y) in enumerate(columns(problem)):
        shown = f"{x}+{y}" + (f"+{carry}" if carry else "")
        total = x + y + carry
        carry = total // 10 if i != slip_column else 1 - total // 10
        lines.append(f"{shown}={total} c{carry}")
        digits.append(total % 10)
    return "\n".join([*lines, f"\\boxed{{{answer_from_working(digits, carry)}}}"])


def answer_from_working(column_digits: list[int], final_carry: int) -> str:
    """The answer a working adds up to: its column digits, least significant first, and the last carry."""
    digits = column_digits + ([1] if final_carry else [])
    return "".join(str(d) for d in reversed(digits)).lstrip("0") or "0"


def solution(problem: Problem) -> str:
    """The gold step-by-step solution (without the EOS token)."""
    return _worked(problem)


def max_solution_length(digits: tuple[int, int] = DEFAULT_DIGITS) -> int:
    """Tokens in the longest gold solution, EOS included (one token per character).

    All-nines operands of the most digits carry in every column, which makes every line and
    the answer as long as they get.
    """
    widest = 10 ** digits[1] - 1
    return len(solution(Problem(widest, widest))) + 1


def corrupted_solution(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong solution: one line states its column sum right but passes on the wrong carry.

    The rest of the working follows the wrong carry, so the text stays self-consistent after the
    slip, as in a real error, and the boxed answer is off by a power of ten. The slip is visible
    where it happens: a two-digit sum followed by ``c0``, or a one-digit sum by ``c1``. A slip in
    the sum itself (``8+5=14``) would be just as wrong, but to see it the model must redo the
    addition; the demo's 2-layer model learns to see a wrong carry, and not a wrong sum, within its
    budget (docs/demo.md).
    """
    return _worked(problem, slip_column=rng.randrange(len(columns(problem))))


def verify(response: str, answer: str) -> float:
    """1.0 if the last ``\\boxed{}`` of ``response`` holds exactly ``answer``, else 0.0."""
    boxed = extract_last_boxed(response)
    return float(boxed is not None and boxed.strip() == answer.strip())


def exact_match_reward(completions: list[str], answer: list[str], **kwargs: Any) -> list[float]:
    """:func:`verify` as a TRL reward function (reads the dataset's ``answer`` column)."""
    return [verify(completion, gold) for completion, gold in zip(completions, answer, strict=True)]


def to_dataset(
    problems: Sequence[Problem],
    completions: bool = False,
    noise: float = 0.0,
    seed: int = 0,
    eos_token: str = EOS,
) -> Dataset:
    """A ``datasets.Dataset`` with columns ``prompt`` and ``answer`` (TRL's prompt-only format).

    Args:
        problems: the problems, one row each.
        completions: add a ``completion`` column (TRL's prompt-completion format, for SFT): the
            gold solution followed by ``eos_token``, so the model learns to stop.
        noise: share of completions replaced by a :func:`corrupted_solution`, drawn with ``seed``;
            their ``answer`` column stays the true answer.
        seed: seed of the noise draw.
        eos_token: appended to every completion.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    if noise and not completions:
        raise ValueError("noise only applies to completions")
    columns: dict[str, list[str]] = {
        "prompt": [p.prompt for p in problems],
        "answer": [p.answer for p in problems],
    }
    if completions:
        rng = random.Random(seed)
        worked = [corrupted_solution(p, rng) if rng.random() < noise else solution(p) for p in problems]
        columns["completion"] = [text + eos_token for text in worked]
    return Dataset.from_dict(columns)
