"""The `judge` verifier: a model behind an OpenAI-compatible chat-completions endpoint says whether a
response's final answer matches the reference answer.

Each completion is one request (`JUDGE_PROMPT` filled with the problem, the reference answer and the
response; temperature 0), sent concurrently, `judge_concurrency` at a time. The reward is
P(yes) / (P(yes) + P(no)) from the top log-probabilities of the judge's first word where the endpoint
returns them, else 1.0 for "yes" and 0.0 for "no"; a reply that is neither is None (cannot judge).

Failures, and which of them stop the run:
- Until the endpoint has answered once, a URL that refuses connections or names no host, and an HTTP
  4xx other than 429 (a wrong path, model name or API key) are misconfiguration: `LaserInputError`
  ("judge URL ...: connection refused"), one line, exit 2, nothing written.
- Otherwise a time-out (`judge_timeout`, for the whole request), a connection refused or closed, HTTP 5xx
  or 429, or a reply that is not a chat completion is retried `judge_retries` times, waiting
  `judge_backoff` seconds, then twice that, and so on. What still fails, and any other HTTP error, gives
  None for that completion and a logged warning (counted in `JudgeClient.stats`, and in training logged as
  `judge/unjudged`, the share of a batch left unjudged). TRL turns None into NaN, which it leaves out of the
  advantages, and LaSeR out of the self-reward loss: an unreachable judge never hangs nor crashes a run.

Judgements are cached in a JSONL file keyed by (judge model, prompt, problem, answer, response), one line
appended per judgement as it arrives, so a resumed run asks nothing twice; a torn last line (a killed run)
is skipped. Failures and undecided replies are not cached: a resumed run asks again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from laser_rl.errors import LaserInputError
from laser_rl.grading import completion_text

logger = logging.getLogger(__name__)

JUDGE_PROMPT = """You are checking a response to a problem against the reference answer.

Problem:
{problem}

Reference answer:
{answer}

Response:
{response}

Is the final answer of the response equivalent to the reference answer (the same value, option or \
meaning, in any form)? Reply with one word: yes or no."""

# The cache keys carry the prompt: editing it invalidates every cached judgement.
_PROMPT_VERSION = hashlib.sha256(JUDGE_PROMPT.encode()).hexdigest()[:16]
# Room for a word after a little markup ("**Yes**"); the verdict is the first word.
_MAX_TOKENS = 5
_VERDICT = re.compile(r"\W*(yes|no)\b", re.IGNORECASE)


@dataclass
class JudgeArguments:
    """Where the `judge` verifier's endpoint is and how it is asked (flags of `laser train` and `laser grade`)."""

    judge_url: str | None = field(
        default=None,
        metadata={"help": "Base URL of the judge's OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1."},
    )
    judge_model: str | None = field(default=None, metadata={"help": "Model name the judge endpoint serves."})
    judge_api_key_env: str = field(
        default="LASER_JUDGE_API_KEY",
        metadata={"help": "Environment variable holding the judge's API key, sent as a Bearer token if it is set."},
    )
    judge_timeout: float = field(default=60.0, metadata={"help": "Seconds one judge request may take in all."})
    judge_concurrency: int = field(default=16, metadata={"help": "Judge requests in flight at once."})
    judge_retries: int = field(
        default=3, metadata={"help": "Retries of a judge request after a time-out, a lost connection, HTTP 5xx/429."}
    )
    judge_backoff: float = field(
        default=1.0, metadata={"help": "Seconds before the first retry of a judge request; doubled at each retry."}
    )
    judge_logprobs: int = field(
        default=5,
        metadata={
            "help": "Top log-probabilities to request (reward P(yes)/(P(yes)+P(no))); 0 asks for none (reward 0/1)."
        },
    )
    judge_cache: str | None = field(
        default=None,
        metadata={
            "help": "JSONL file caching the judgements. Default: judge_cache.jsonl in output_dir (laser train), "
            "OUT.jsonl.judge_cache.jsonl (laser grade)."
        },
    )


class JudgeRequestError(Exception):
    """A judge request that failed: `retry` if trying again may help, `misconfigured` if, before the endpoint
    has ever answered, it means the settings are wrong."""

    def __init__(self, reason: str, retry: bool, misconfigured: bool = False):
        super().__init__(reason)
        self.reason, self.retry, self.misconfigured = reason, retry, misconfigured


def judge_messages(problem: str, answer: str, response: str) -> list[dict]:
    """The chat messages asking the judge about one response."""
    return [{"role": "user", "content": JUDGE_PROMPT.format(problem=problem, answer=answer, response=response)}]


def _token_verdict(token: object) -> str | None:
    """ "yes" or "no" for a token that is that word alone (any case, with spaces or punctuation), else None."""
    verdict = _VERDICT.fullmatch(token.strip(" \t\n.*:!")) if isinstance(token, str) else None
    return verdict[1].lower() if verdict else None


def logprob_verdict(logprobs: object) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the top log-probabilities of the first token holding a letter, in the
    OpenAI `choices[0].logprobs` format; None if there are none, or neither word is among them."""
    try:
        first = next(entry for entry in logprobs["content"] if re.search(r"[^\W\d_]", entry["token"]))
        mass = {"yes": 0.0, "no": 0.0}
        for candidate in first.get("top_logprobs") or [first]:
            verdict = _token_verdict(candidate["token"])
            if verdict is not None:
                mass[verdict] += math.exp(float(candidate["logprob"]))
    except (KeyError, TypeError, ValueError, StopIteration, OverflowError):
        return None
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


def read_verdict(reply: object) -> float | None:
    """The reward in a chat-completion reply: `logprob_verdict` where it gives one, else 1.0 / 0.0 for a reply
    whose first word is yes / no, else None. A reply that is not a chat completion raises a retriable
    `JudgeRequestError`."""
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        text = None
    if not isinstance(text, str):
        raise JudgeRequestError("a reply that is not a chat completion", retry=True)
    probability = logprob_verdict(choice.get("logprobs"))
    if probability is not None:
        return probability
    verdict = _VERDICT.match(text)
    return None if verdict is None else float(verdict[1].lower() == "yes")


class JudgeCache:
    """Judgements by key, in memory and appended to a JSONL file (`{"key": ..., "reward": ...}` a line)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.rewards: dict[str, float] = {}
        self._lock = threading.Lock()
        self._torn = False
        if self.path is not None and self.path.is_file():
            raw = self.path.read_bytes()
            self._torn = bool(raw) and not raw.endswith(b"\n")
            for line in raw.splitlines():
                self._load_line(line)

    def _load_line(self, line: bytes) -> None:
        """Keep a line's judgement; skip a line that is not one (a torn last line)."""
        try:
            entry = json.loads(line)
            key, reward = entry["key"], float(entry["reward"])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(key, str) and 0.0 <= reward <= 1.0:
            self.rewards[key] = reward

    def put(self, key: str, reward: float) -> None:
        """Remember a judgement, and append it to the file with one write (safe to interrupt)."""
        line = json.dumps({"key": key, "reward": reward}) + "\n"
        with self._lock:
            self.rewards[key] = reward
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, ("\n" if self._torn else "").encode() + line.encode())
            finally:
                os.close(descriptor)
            self._torn = False


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline`; a `TimeoutError` if none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


class JudgeClient:
    """Asks the judge endpoint about (problem, answer, response) triples: cached, concurrent, with retries."""

    def __init__(self, args: JudgeArguments, cache: JudgeCache):
        self.args, self.cache = args, cache
        url = urlsplit(args.judge_url)
        self._connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._host, self._port = url.hostname, url.port
        path = url.path.rstrip("/")
        self._path = path if path.endswith("/chat/completions") else path + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if os.environ.get(args.judge_api_key_env):
            self._headers["Authorization"] = f"Bearer {os.environ[args.judge_api_key_env]}"
        self.answered = False  # whether the endpoint has ever given a chat completion
        self.stats: Counter = Counter()  # requests, cached, judged, undecided, failed
        self._stats_lock = threading.Lock()  # requests are counted from the pool's threads

    def key(self, problem: str, answer: str, response: str) -> str:
        """The cache key of a question to this judge."""
        question = [self.args.judge_model, _PROMPT_VERSION, problem, answer, response]
        return hashlib.sha256(json.dumps(question).encode()).hexdigest()

    def post(self, payload: dict) -> object:
        """One request, within `judge_timeout` seconds in all: the decoded JSON reply, or a `JudgeRequestError`."""
        deadline = time.monotonic() + self.args.judge_timeout
        connection = self._connection(self._host, self._port, timeout=self.args.judge_timeout)
        with self._stats_lock:
            self.stats["requests"] += 1
        try:
            connection.request("POST", self._path, json.dumps(payload).encode(), self._headers)
            sock = connection.sock  # the response may detach it from the connection
            sock.settimeout(_remaining(deadline))
            response = connection.getresponse()
            body = []
            while not body or body[-1]:
                sock.settimeout(_remaining(deadline))
                body.append(response.read1(1 << 16))
        except ConnectionRefusedError:
            raise JudgeRequestError("connection refused", retry=True, misconfigured=True) from None
        except socket.gaierror as error:
            raise JudgeRequestError(f"unknown host ({error.strerror})", retry=True, misconfigured=True) from None
        except TimeoutError:
            raise JudgeRequestError(f"no reply within {self.args.judge_timeout:g}s", retry=True) from None
        except (OSError, http.client.HTTPException) as error:
            raise JudgeRequestError(f"connection lost ({type(error).__name__})", retry=True) from None
        finally:
            connection.close()
        text = b"".join(body).decode("utf-8", errors="replace")
        if response.status != 200:
            transient = response.status == 429 or response.status >= 500
            reason = f"HTTP {response.status} {response.reason}: {' '.join(text.split())[:200]}".rstrip(": ")
            raise JudgeRequestError(reason, retry=transient, misconfigured=not transient)
        try:
            return json.loads(text)
        except ValueError:
            raise JudgeRequestError("a reply that is not JSON", retry=True) from None

    def ask(self, problem: str, answer: str, response: str) -> float | None:
        """The judge's reward for one response (None: neither yes nor no), retried with exponential backoff;
        `JudgeRequestError` when every try failed, `LaserInputError` for misconfiguration (see the module)."""
        payload = {
            "model": self.args.judge_model,
            "messages": judge_messages(problem, answer, response),
            "temperature": 0,
            "max_tokens": _MAX_TOKENS,
        }
        if self.args.judge_logprobs > 0:
            payload |= {"logprobs": True, "top_logprobs": self.args.judge_logprobs}
        attempt = 0
        while True:
            try:
                reward = read_verdict(self.post(payload))
            except JudgeRequestError as error:
                if error.misconfigured and not self.answered:
                    raise LaserInputError(f"judge URL {self.args.judge_url}: {error.reason}") from None
                if not error.retry or attempt == self.args.judge_retries:
                    raise
                time.sleep(self.args.judge_backoff * 2**attempt)
                attempt += 1
                continue
            self.answered = True
            return reward

    def _settle(self, key: str, question: tuple[str, str, str]) -> float | str | None:
        """`ask`, cached; the failure's reason instead of a reward where every try failed."""
        try:
            reward = self.ask(*question)
        except JudgeRequestError as error:
            return error.reason
        if reward is not None:
            self.cache.put(key, reward)
        return reward

    def judge(self, questions: Sequence[tuple[str, str, str]]) -> list[float | None]:
        """Rewards for (problem, answer, response) triples: cached ones from the cache, each other distinct one
        asked once, concurrently; None where the judge could not judge (logged as a warning)."""
        keys = [self.key(*question) for question in questions]
        todo = {key: question for key, question in zip(keys, questions, strict=True) if key not in self.cache.rewards}
        self.stats["cached"] += len(questions) - len(todo)
        outcomes: dict[str, float | str | None] = {}
        pending = list(todo.items())
        if pending and not self.answered:  # a misconfigured endpoint fails on one request, not on a batch
            outcomes[pending[0][0]] = self._settle(*pending[0])
            pending = pending[1:]
        if pending:
            with ThreadPoolExecutor(max_workers=min(self.args.judge_concurrency, len(pending))) as pool:
                settled = pool.map(lambda item: self._settle(*item), pending)
                outcomes |= dict(zip([key for key, _ in pending], settled, strict=True))
        failures = [outcome for outcome in outcomes.values() if isinstance(outcome, str)]
        undecided = sum(outcome is None for outcome in outcomes.values())
        self.stats.update(failed=len(failures), undecided=undecided, judged=len(outcomes) - len(failures) - undecided)
        reasons = [f"{count} x {reason}" for reason, count in Counter(failures).most_common(3)]
        reasons += [f"{undecided} x a reply neither yes nor no"] if undecided else []
        if reasons:
            logger.warning(
                "judge %s: %d of %d questions not judged (%s); their reward is None (NaN: left out of training)",
                self.args.judge_url,
                len(failures) + undecided,
                len(outcomes),
                "; ".join(reasons),
            )
        return [self.cache.rewards.get(key) for key in keys]


def check_judge_arguments(args: JudgeArguments, option: str) -> None:
    """A `LaserInputError` naming the setting for judge settings that cannot work; `option` names the verifier
    choice (e.g. "--reward judge")."""
    if not args.judge_url or not args.judge_model:
        missing = "--judge-url" if not args.judge_url else "--judge-model"
        raise LaserInputError(f"{option}: no {missing} given (the judge endpoint's base URL and model name)")
    url = urlsplit(args.judge_url)
    try:
        valid = url.scheme in ("http", "https") and bool(url.hostname) and (url.port or 0) >= 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise LaserInputError(f"--judge-url {args.judge_url}: not an http(s) URL like http://127.0.0.1:8000/v1")
    for name, valid, rule in [
        ("judge_timeout", args.judge_timeout > 0, "a positive number of seconds"),
        ("judge_concurrency", args.judge_concurrency >= 1, "at least 1"),
        ("judge_retries", args.judge_retries >= 0, "at least 0"),
        ("judge_backoff", args.judge_backoff >= 0, "at least 0"),
        ("judge_logprobs", 0 <= args.judge_logprobs <= 20, "between 0 and 20 (the OpenAI API's limit)"),
    ]:
        if not valid:
            raise LaserInputError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be {rule}")


def build_judge(args: JudgeArguments, option: str) -> Callable[..., list[float | None]]:
    """The `judge` reward function for settings `args` (checked by `check_judge_arguments`), with its cache.

    It takes the verifier arguments (see `laser_rl.verifiers`): the problem shown to the judge is the
    `problem` column, else the prompt (TRL's `prompts`). The `JudgeClient` is its `client` attribute.
    """
    check_judge_arguments(args, option)
    client = JudgeClient(args, JudgeCache(args.judge_cache))

    def judge_reward(
        completions: list, answer: list, problem: list | None = None, prompts: list | None = None, **kwargs
    ) -> list[float | None]:
        """LLM judge verifier: the judge's P(yes) that the completion's final answer matches `answer`, else 1/0
        from its reply; None where it cannot judge (see `laser_rl.llm_judge`)."""
        if problem is None and prompts is None:
            raise LaserInputError("verifier judge: no `problem` field to show the judge")
        problems = problem if problem is not None else [completion_text(prompt) for prompt in prompts]
        questions = [
            (str(text), str(gold), completion_text(completion))
            for text, gold, completion in zip(problems, answer, completions, strict=True)
        ]
        rewards = client.judge(questions)
        if kwargs.get("log_metric") is not None and rewards:  # TRL's per-step metrics
            kwargs["log_metric"]("judge/unjudged", sum(reward is None for reward in rewards) / len(rewards))
        return rewards

    judge_reward.client = client
    return judge_reward
