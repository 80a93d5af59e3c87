"""The `judge` verifier against a judge served on 127.0.0.1 in the OpenAI chat-completions wire format."""

import json
import logging
import math
import re
import socket
import time

import pytest
from judge_server import NO_PROBABILITY, YES_PROBABILITY, JudgeServer

from laser_rl.cli import main
from laser_rl.errors import LaserInputError
from laser_rl.jsonl import read_jsonl
from laser_rl.llm_judge import JudgeArguments, logprob_verdict, read_verdict
from laser_rl.verifiers import resolve_verifier

RIGHT, WRONG = "so it is \\boxed{4}", "so it is \\boxed{5}"


def judge(server_url: str, **settings):
    """The checked `judge` verifier, with small time limits and backoff unless `settings` say otherwise."""
    fields = {"judge_model": "judge-7b", "judge_timeout": 2.0, "judge_retries": 2, "judge_backoff": 0.01}
    return resolve_verifier("judge", "--reward", JudgeArguments(judge_url=server_url, **fields | settings))


def ask(verifier, responses, answer="4"):
    return verifier(responses, answer=[answer] * len(responses), problem=["2+2"] * len(responses))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_judge_with_logprobs_gives_the_probability_of_yes(monkeypatch):
    monkeypatch.setenv("LASER_JUDGE_API_KEY", "sk-test")
    with JudgeServer() as server:
        rewards = ask(judge(server.url), [RIGHT, WRONG])
    assert rewards == pytest.approx([YES_PROBABILITY, NO_PROBABILITY])
    body = server.bodies[0]
    assert body["model"] == "judge-7b" and body["logprobs"] is True and body["top_logprobs"] == 5
    assert body["temperature"] == 0 and "2+2" in body["messages"][0]["content"]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_a_judge_without_logprobs_gives_1_or_0_from_its_reply(monkeypatch):
    monkeypatch.delenv("LASER_JUDGE_API_KEY", raising=False)
    with JudgeServer(logprobs=False) as server:
        assert ask(judge(server.url), [RIGHT, WRONG]) == [1.0, 0.0]
    with JudgeServer() as server:  # one that has them, not asked for them
        assert ask(judge(server.url, judge_logprobs=0), [RIGHT, WRONG]) == [1.0, 0.0]
    assert "logprobs" not in server.bodies[0] and "Authorization" not in server.headers[0]


@pytest.mark.parametrize("failure", ["500", "429", "close", "slow", "garbage", "not-a-completion"])
def test_a_failure_that_passes_is_retried(failure):
    with JudgeServer(plan=lambda n: failure if n < 2 else "ok", delay=1.0) as server:
        assert ask(judge(server.url, judge_timeout=0.3), [RIGHT]) == [pytest.approx(YES_PROBABILITY)]
    assert server.requests == 3


@pytest.mark.parametrize("failure", ["500", "close", "slow", "not-a-completion"])
def test_a_failure_that_stays_gives_none_after_the_retries_and_a_warning(failure, caplog):
    with JudgeServer(plan=lambda n: "ok" if n == 0 else failure, delay=1.0) as server:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="laser_rl.llm_judge"):
            rewards = ask(judge(server.url, judge_timeout=0.2, judge_retries=2), [RIGHT, WRONG])
        elapsed = time.monotonic() - started
    assert rewards[1] is None and server.requests == 1 + 3  # the first answered, the second tried 3 times
    assert elapsed < 0.2 * 3 + 0.5
    assert "1 of 2 questions not judged" in caplog.text and "reward is None" in caplog.text


def test_a_reply_neither_yes_nor_no_is_none_without_retry(caplog):
    with JudgeServer(plan=lambda n: "maybe") as server, caplog.at_level(logging.WARNING):
        verifier = judge(server.url)
        assert ask(verifier, [RIGHT]) == [None]
    assert server.requests == 1 and "neither yes nor no" in caplog.text
    assert verifier.__wrapped__.client.stats["undecided"] == 1


def test_connection_refused_on_the_first_request_is_a_one_line_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LaserInputError, match=f"^judge URL {url}: connection refused$"):
        ask(judge(url), [RIGHT])


def test_http_404_on_the_first_request_names_the_url_and_is_not_retried():
    with JudgeServer(plan=lambda n: "404") as server, pytest.raises(LaserInputError) as error:
        ask(judge(server.url), [RIGHT, WRONG])
    assert str(error.value) == f'judge URL {server.url}: HTTP 404 Not Found: {{"error": {{"message": "not found"}}}}'
    assert server.requests == 1


def test_an_endpoint_that_goes_away_after_answering_gives_none():
    with JudgeServer() as server:
        verifier = judge(server.url, judge_retries=1)
        assert ask(verifier, [RIGHT]) == [pytest.approx(YES_PROBABILITY)]
    assert ask(verifier, [WRONG]) == [None]  # refused now, but the URL was right


def test_requests_are_concurrent_up_to_the_limit():
    with JudgeServer(plan=lambda n: "slow", delay=0.1) as server:
        verifier = judge(server.url, judge_concurrency=3)
        rewards = ask(verifier, [f"\\boxed{{{i}}}" for i in range(10)])
    assert server.requests == 10 and server.max_in_flight == 3
    stats = verifier.__wrapped__.client.stats
    assert stats == {"requests": 10, "judged": 10, "cached": 0, "failed": 0, "undecided": 0}
    assert [reward > 0.5 for reward in rewards] == [i == 4 for i in range(10)]


def test_the_cache_asks_nothing_twice_and_survives_a_torn_line(tmp_path):
    cache = tmp_path / "run" / "judge_cache.jsonl"
    with JudgeServer() as server:
        first = ask(judge(server.url, judge_cache=str(cache)), [RIGHT, WRONG, RIGHT])
        assert server.requests == 2  # the same response is asked once
        assert ask(judge(server.url, judge_cache=str(cache)), [WRONG, RIGHT]) == [first[1], first[0]]
        assert server.requests == 2  # a new run with the same cache asks nothing
        assert ask(judge(server.url, judge_cache=str(cache), judge_model="other"), [RIGHT]) == [first[0]]
        assert server.requests == 3  # another judge model is another question
        with cache.open("a") as file:
            file.write('{"key": "abc", "rew')  # a run killed in the middle of a line
        assert ask(judge(server.url, judge_cache=str(cache)), [RIGHT, WRONG, "\\boxed{4.0}"])[:2] == first[:2]
        assert server.requests == 4
    lines = cache.read_text().splitlines()
    assert len(lines) == 5 and lines[3] == '{"key": "abc", "rew' and json.loads(lines[4])["reward"] < 0.5


def test_failures_are_not_cached(tmp_path):
    cache = tmp_path / "cache.jsonl"
    with JudgeServer(plan=lambda n: "ok" if n == 0 else "500") as server:
        ask(judge(server.url, judge_cache=str(cache), judge_retries=0), [RIGHT, WRONG])
    assert len(cache.read_text().splitlines()) == 1


def test_the_problem_comes_from_the_prompts_without_a_problem_column():
    with JudgeServer() as server:
        verifier = judge(server.url)
        rewards = verifier(
            [[{"role": "assistant", "content": RIGHT}]],
            answer=["4"],
            prompts=[[{"role": "user", "content": "What is 2+2?"}]],
        )
    assert rewards == [pytest.approx(YES_PROBABILITY)] and "What is 2+2?" in server.bodies[0]["messages"][0]["content"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"judge_url": None}, "--reward judge: no --judge-url given"),
        ({"judge_model": None}, "--reward judge: no --judge-model given"),
        ({"judge_url": "127.0.0.1:8000/v1"}, "--judge-url 127.0.0.1:8000/v1: not an http(s) URL"),
        ({"judge_url": "http://127.0.0.1:port/v1"}, "not an http(s) URL"),
        ({"judge_concurrency": 0}, "--judge-concurrency 0: must be at least 1"),
        ({"judge_timeout": 0.0}, "--judge-timeout 0.0: must be a positive number of seconds"),
        ({"judge_logprobs": 21}, "--judge-logprobs 21: must be between 0 and 20"),
    ],
)
def test_bad_judge_settings_are_one_line(settings, message):
    fields = {"judge_url": "http://127.0.0.1:1/v1", "judge_model": "m"} | settings
    with pytest.raises(LaserInputError, match=re.escape(message)):
        resolve_verifier("judge", "--reward", JudgeArguments(**fields))


@pytest.mark.parametrize(
    ("content", "reward"),
    [("Yes", 1.0), ("**No**.", 0.0), ("no, the answer differs", 0.0), ("Yesterday", None), ("", None)],
)
def test_the_verdict_in_a_reply_without_logprobs(content, reward):
    assert read_verdict({"choices": [{"message": {"content": content}}]}) == reward


def test_the_verdict_from_logprobs_skips_markup_and_sums_spellings():
    top = [{"token": "YES", "logprob": math.log(0.3)}, {"token": " yes.", "logprob": math.log(0.3)}]
    top += [{"token": "no", "logprob": math.log(0.2)}, {"token": "Yesterday", "logprob": math.log(0.2)}]
    content = [{"token": "**", "logprob": 0.0, "top_logprobs": []}, {"token": "YES", "top_logprobs": top}]
    assert logprob_verdict({"content": content}) == pytest.approx(0.75)
    assert logprob_verdict({"content": [{"token": "Maybe", "top_logprobs": [top[3]]}]}) is None
    assert logprob_verdict(None) is None and logprob_verdict({"content": "nonsense"}) is None


def test_laser_grade_with_the_judge_end_to_end_and_again_from_its_cache(tmp_path):
    source, graded = tmp_path / "in.jsonl", tmp_path / "graded.jsonl"
    rows = [{"problem": "2+2", "answer": "4", "responses": [RIGHT, WRONG]}, {"problem": "3+3", "answer": 6}]
    rows[1]["responses"] = ["\\boxed{6}"]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with JudgeServer() as server:
        argv = ["grade", str(source), str(graded), "--verifier", "judge", "--judge-url", server.url]
        main(argv + ["--judge-model", "judge-7b", "--judge-backoff", "0.01"])
        first, second = read_jsonl(graded)
        assert first["acc_list"] == pytest.approx([YES_PROBABILITY, NO_PROBABILITY])
        assert first["pred_answers"] == ["4", "5"] and second["acc_list"] == [pytest.approx(YES_PROBABILITY)]
        # the problem column reaches the judge (requests run concurrently: their order is not fixed)
        assert sum("Problem:\n3+3" in body["messages"][0]["content"] for body in server.bodies) == 1
        graded.unlink()
        main(argv + ["--judge-model", "judge-7b"])  # made again: every judgement from the cache
        assert server.requests == 3 and read_jsonl(graded) == [first, second]
    assert len((tmp_path / "graded.jsonl.judge_cache.jsonl").read_text().splitlines()) == 3


def test_laser_grade_with_a_judge_url_that_refuses_connections_is_one_line_and_writes_nothing(tmp_path, capsys):
    source, graded = tmp_path / "in.jsonl", tmp_path / "graded.jsonl"
    source.write_text(json.dumps({"problem": "2+2", "answer": "4", "responses": [RIGHT]}) + "\n")
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(SystemExit) as exit_info:
        main(["grade", str(source), str(graded), "--verifier", "judge", "--judge-url", url, "--judge-model", "m"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"laser grade: error: judge URL {url}: connection refused\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.jsonl"]
