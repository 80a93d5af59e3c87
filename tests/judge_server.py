"""A judge behind the OpenAI chat-completions wire format, on 127.0.0.1, for the tests of the `judge` verifier.

It says "yes" when the response in the prompt holds `\\boxed{<reference answer>}`, "no" otherwise, with
top log-probabilities when asked for them (P(yes) / (P(yes) + P(no)) is `YES_PROBABILITY` or
`NO_PROBABILITY`). `plan(n)` says what it does with the n-th request (from 0): "ok", "500", "429", "404",
"slow" (answers after `delay` seconds), "close" (closes the connection without a reply), "garbage" (a
body that is not JSON), "not-a-completion" (JSON without choices) or "maybe" (answers "Maybe").
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The top log-probabilities of the first token: "Yes" and " yes" count as yes, "Maybe" as neither.
YES_TOP = {"Yes": 0.6, " yes": 0.1, "No": 0.2, "Maybe": 0.1}
NO_TOP = {"No": 0.63, "Yes": 0.27, "Maybe": 0.1}
YES_PROBABILITY = 0.7 / 0.9
NO_PROBABILITY = 0.27 / 0.9
_QUESTION = re.compile(r"Reference answer:\n(.*?)\n\nResponse:\n(.*)\n\nIs the final answer", re.DOTALL)


class JudgeServer(ThreadingHTTPServer):
    """The server; `requests` counts the requests, `bodies` and `headers` keep them, `max_in_flight` is the
    most requests it was answering at once."""

    daemon_threads = True

    def __init__(self, logprobs: bool = True, plan: Callable[[int], str] = lambda n: "ok", delay: float = 1.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.logprobs, self.plan, self.delay = logprobs, plan, delay
        self.requests, self.in_flight, self.max_in_flight = 0, 0, 0
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)

    def handle_error(self, request, client_address) -> None:
        """A client that gave up on a slow answer: nothing to report."""

    def reply(self, body: dict) -> dict:
        """The chat completion answering a request."""
        answer, response = _QUESTION.search(body["messages"][-1]["content"]).groups()
        says_yes = f"\\boxed{{{answer}}}" in response
        choice = {"index": 0, "message": {"role": "assistant", "content": "Yes" if says_yes else "No"}}
        if self.logprobs and body.get("logprobs"):
            top = [{"token": token, "logprob": math.log(p)} for token, p in (YES_TOP if says_yes else NO_TOP).items()]
            first = {"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}
            choice["logprobs"] = {"content": [first]}
        return {"id": "judge", "object": "chat.completion", "model": body["model"], "choices": [choice]}


class _Handler(BaseHTTPRequestHandler):
    server: JudgeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            number = self.server.requests
            self.server.requests += 1
            self.server.bodies.append(body)
            self.server.headers.append(dict(self.headers))
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            self.act(self.server.plan(number), body)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def act(self, action: str, body: dict) -> None:
        if self.path != "/v1/chat/completions" or action == "404":
            return self.send(404, b'{"error": {"message": "not found"}}')
        if action == "close":
            self.close_connection = True
            return None
        if action in ("500", "429"):
            return self.send(int(action), b'{"error": {"message": "try later"}}')
        if action == "garbage":
            return self.send(200, b"<html>gateway</html>")
        if action == "not-a-completion":
            return self.send(200, b'{"object": "error"}')
        if action == "slow":
            time.sleep(self.server.delay)
        reply = self.server.reply(body)
        if action == "maybe":
            reply["choices"][0] = {"index": 0, "message": {"role": "assistant", "content": "Maybe, it depends."}}
        return self.send(200, json.dumps(reply).encode())

    def send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
