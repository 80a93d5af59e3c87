"""Math answer grading with math-verify that hostile answers can neither hang nor crash.

The answer of a response is the content of its last `\\boxed{...}` (as in the paper). Two answers are
compared in worker processes by math-verify: `verify(parse(gold), parse(prediction))`. math-verify's
own timeouts use `signal.alarm`, which fails outside the main thread, and some answers (`9^{9^{9}}`,
`(10^{100000})!`, deep nesting) make sympy run for minutes. So the parent process enforces a
wall-clock limit per pair instead: a pair that runs past it, or whose worker dies, is "not equivalent"
and its worker is killed and replaced, while the other pairs go on.
"""

import atexit
import logging
import multiprocessing as mp
import os
import re
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Self

# Longer answers score 0 without being parsed: real final answers are far shorter, and parsing a long
# one is slow and memory hungry.
MAX_ANSWER_CHARS = 1000
# Heap limit (RLIMIT_DATA) of a worker: an answer whose evaluation allocates without bound fails there
# with a MemoryError instead of drawing the machine, training process included, into the OOM killer.
WORKER_MEMORY_BYTES = 4 * 1024**3
# A worker imports sympy and math-verify before it is ready; on a busy machine that can be slow.
_STARTUP_TIMEOUT_S = 120.0

# Greedy `.*` backtracks to the last opening; both scans below are linear in the text length.
_LAST_BOX_OPENING = re.compile(r".*\\(?:boxed|fbox)\s*\{", re.DOTALL)
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def extract_last_boxed(text: str) -> str | None:
    """Return the content of the last `\\boxed{...}` (or `\\boxed {...}`, `\\fbox{...}`) in `text`.

    Braces are matched, escaped ones (`\\{`, `\\}`) excepted. None if there is no box or the last one
    is never closed.
    """
    opening = _LAST_BOX_OPENING.match(text)
    if opening is None:
        return None
    depth = 1
    for token in _BRACE_OR_ESCAPE.finditer(text, opening.end()):
        if token[0] == "{":
            depth += 1
        elif token[0] == "}":
            depth -= 1
            if depth == 0:
                return text[opening.end() : token.start()]
    return None


def _parse(answer: str) -> list:
    """Parse an extracted answer with math-verify, as inline math or, if that gives no expression, boxed.

    Each form parses a few answers the other leaves as plain strings: `204.` only as math,
    `\\frac{1}{2}.` only boxed.
    """
    from math_verify import parse

    parsed = parse(f"${answer}$", parsing_timeout=None)
    if not parsed or isinstance(parsed[0], str):
        parsed = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    return parsed


def _equivalent(gold: str, prediction: str) -> bool:
    """math-verify's verdict on two extracted answers, without its signal-based timeouts."""
    from math_verify import verify

    try:
        return bool(verify(_parse(gold), _parse(prediction), timeout_seconds=None))
    except Exception:  # math-verify catches its own errors; this is for anything it lets through
        return False


def _worker_main(conn: Connection) -> None:
    """Answer each (gold, prediction) pair received on `conn` with a bool, after a first `True` (ready)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then kills us
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(WORKER_MEMORY_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that its timeouts are off
    # Import math-verify and build its parsers before taking the clock; a broken install (e.g. without
    # the antlr4 extra) parses nothing, and would otherwise grade everything 0.
    if not _equivalent("\\frac{1}{2}", "0.5"):
        raise RuntimeError("math-verify cannot parse LaTeX; install math-verify[antlr4_13_2]")
    conn.send(True)
    while True:
        try:
            gold, prediction = conn.recv()
        except EOFError:  # the parent closed the pipe or exited
            return
        conn.send(_equivalent(gold, prediction))


class _Worker:
    """A worker process, its end of the pipe and what the parent is waiting from it."""

    def __init__(self, context: BaseContext) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_conn,), name="laser-math-grader", daemon=True)
        self.process.start()
        child_conn.close()
        self.ready = False  # until its first message
        self.item: int | None = None  # index of the pair it is checking
        self.deadline = time.monotonic() + _STARTUP_TIMEOUT_S

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class MathGrader:
    """Grades math answers with math-verify in a pool of worker processes, with a time limit per answer.

    Safe to call from any thread (calls are serialized) and with torch threads around: workers are
    started with "spawn", so a script that uses one needs the usual `if __name__ == "__main__":` guard.
    Answers over `MAX_ANSWER_CHARS` characters score 0 without being parsed.

    Args:
        num_workers: worker processes; default min(2, CPU count).
        timeout: seconds one comparison may take, parsing included; past it the answer scores 0.
    """

    def __init__(self, num_workers: int | None = None, timeout: float = 5.0) -> None:
        if num_workers is None:
            num_workers = min(2, os.cpu_count() or 1)
        if num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self._context = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._workers = [_Worker(self._context) for _ in range(num_workers)]  # empty once closed

    def grade(self, predictions: Sequence[str | None], golds: Sequence[str]) -> list[float]:
        """1.0 where the extracted predicted answer is equivalent to the gold answer, else 0.0.

        A None prediction (no answer extracted) scores 0.0. Golds that are not strings (e.g. ints
        from a dataset) are converted with `str`.
        """
        pairs = [
            None if prediction is None else (str(gold), prediction)
            for prediction, gold in zip(predictions, golds, strict=True)
        ]
        return [float(verdict) for verdict in self._check(pairs)]

    def equivalent(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether the two extracted answers of each pair are mathematically equivalent.

        math-verify is not symmetric: the first answer of a pair is taken as the reference.
        """
        return self._check(pairs)

    def close(self) -> None:
        """Kill the workers. Idempotent; the grader cannot be used afterwards."""
        with self._lock:
            for worker in self._workers:
                worker.kill()
            self._workers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self, pairs: Sequence[tuple[str, str] | None]) -> list[bool]:
        """Verdicts on (gold, prediction) pairs, False for None and over-long pairs, in order."""
        verdicts = [False] * len(pairs)
        todo = deque(i for i, pair in enumerate(pairs) if pair is not None and max(map(len, pair)) <= MAX_ANSWER_CHARS)
        with self._lock:
            if not self._workers:
                raise RuntimeError("this MathGrader is closed")
            try:
                while todo or any(worker.item is not None for worker in self._workers):
                    for slot, worker in enumerate(self._workers):
                        if todo and worker.ready and worker.item is None:
                            self._send(slot, todo.popleft(), pairs, todo)
                    self._collect(verdicts)
            finally:  # after an error or Ctrl-C, no answer of this call may come back to the next one
                for slot, worker in enumerate(self._workers):
                    if worker.item is not None:
                        self._replace(slot)
        return verdicts

    def _send(self, slot: int, item: int, pairs: Sequence[tuple[str, str] | None], todo: deque[int]) -> None:
        worker = self._workers[slot]
        try:
            worker.conn.send(pairs[item])
        except OSError:  # it died while idle: not the item's fault, retry the item on another worker
            self._replace(slot)
            todo.appendleft(item)
            return
        worker.item = item
        worker.deadline = time.monotonic() + self.timeout

    def _collect(self, verdicts: list[bool]) -> None:
        """Wait until a worker answers or a deadline passes, then handle every worker that is done."""
        waiting = [worker for worker in self._workers if not worker.ready or worker.item is not None]
        delay = min(worker.deadline for worker in waiting) - time.monotonic()
        readable = wait([worker.conn for worker in waiting], timeout=max(delay, 0.0))
        now = time.monotonic()
        for slot, worker in enumerate(self._workers):
            if worker.conn in readable:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):  # it crashed
                    message = None
            elif worker in waiting and now >= worker.deadline:
                message = None
            else:
                continue
            if message is None:  # crashed or out of time: its item, if any, keeps the verdict False
                self._replace(slot)
                if not worker.ready:
                    raise RuntimeError(
                        f"a math grader worker failed to start (exit code {worker.process.exitcode}; see its "
                        "traceback on stderr). Workers are spawned: a script that grades needs an "
                        "`if __name__ == '__main__':` guard."
                    )
            elif not worker.ready:
                worker.ready = True
            else:
                verdicts[worker.item] = message
                worker.item = None

    def _replace(self, slot: int) -> None:
        self._workers[slot].kill()
        self._workers[slot] = _Worker(self._context)


_shared_grader: MathGrader | None = None
_shared_grader_lock = threading.Lock()


def _get_shared_grader() -> MathGrader:
    """The grader of `math_reward`, started on first use and closed at interpreter exit."""
    global _shared_grader
    with _shared_grader_lock:
        if _shared_grader is None:
            _shared_grader = MathGrader()
            atexit.register(_shared_grader.close)
        return _shared_grader


def completion_text(completion: str | list[dict]) -> str:
    """The text of a TRL completion: a string, or a conversation whose last message is the model's."""
    if isinstance(completion, str):
        return completion
    content = completion[-1].get("content") if completion else None
    if isinstance(content, list):  # multimodal message: a list of typed parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def math_reward(completions: list, answer: list[str], **kwargs) -> list[float]:
    """TRL GRPO reward function: 1.0 where the last `\\boxed{}` of a completion matches `answer`, else 0.0.

    `completions` are strings (standard prompts) or lists of messages (conversational prompts);
    `answer` is the dataset column of gold answers. TRL logs it as `rewards/math_reward`.
    """
    predictions = [extract_last_boxed(completion_text(completion)) for completion in completions]
    return _get_shared_grader().grade(predictions, answer)
