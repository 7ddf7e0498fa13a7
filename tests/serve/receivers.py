"""Local HTTP receivers standing in for Slack's incoming webhooks and PagerDuty's Events API v2 in tests.

One class, `Receiver`: a stdlib `ThreadingHTTPServer` on a free loopback port, in a thread of
its own, that records every request it gets and answers as it is told — as its service would
(`slack_stand_in()`: 200 "ok"; `pagerduty_stand_in()`: 202 with PagerDuty's success body), or
failing the first N requests, or all of them, slowly if asked, echoing what it was sent if asked
(to show that a receiver quoting a secret back does not put it in the ledger or the logs).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


# How a receiver answers a request it does not fail: (status, content type, body).
Reply = Callable[[bytes], tuple[int, str, str]]


def _slack_reply(body: bytes) -> tuple[int, str, str]:
    return 200, "text/plain", "ok"


def _pagerduty_reply(body: bytes) -> tuple[int, str, str]:
    dedup_key = json.loads(body).get("dedup_key")
    answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    return 202, "application/json", json.dumps(answer)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records requests and succeeds, fails or dawdles as told."""

    def __init__(self, name: str, reply: Reply) -> None:
        self.name = name
        self._reply = reply
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._fail_left = 0
        self._fail_status = 503
        self._echo = False
        self.delay_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._answer(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads `requests`

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"receiver-{name}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_first(self, count: int, status: int = 503, echo: bool = False) -> None:
        """Answer the next `count` requests with `status` (the body echoes the request if `echo`)."""
        with self._lock:
            self._fail_left, self._fail_status, self._echo = count, status, echo

    def fail_always(self, status: int = 500, echo: bool = False) -> None:
        self.fail_first(10**9, status, echo)

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Any]:
        """The JSON bodies of the requests it answered with success, in the order they came."""
        return [r.json() for r in self.requests if 200 <= r.status < 300]

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            failing = self._fail_left > 0
            if failing:
                self._fail_left -= 1
            status, content_type, text = (
                (self._fail_status, "text/plain", self._failure_text(handler.path, body))
                if failing
                else self._reply(body)
            )
            self._received.append(
                Received("POST", handler.path, dict(handler.headers.items()), body, time.time(), status)
            )
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _failure_text(self, path: str, body: bytes) -> str:
        if self._echo:  # as a careless service might: quoting what it was sent in its error
            return f"rejected {path}: {body.decode(errors='replace')}"
        return f"{self.name} is failing on purpose"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def opsgraph_stand_in() -> Iterator[Receiver]:
    """A stand-in for `opsgraph serve`'s alert webhook, where the shipped Alertmanager config posts: 200 "ok"."""
    receiver = Receiver("opsgraph stand-in", _slack_reply).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def slack_stand_in() -> Iterator[Receiver]:
    """A stand-in for a Slack incoming webhook: 200 "ok" to every POST it does not fail."""
    receiver = Receiver("Slack stand-in", _slack_reply).start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def pagerduty_stand_in() -> Iterator[Receiver]:
    """A stand-in for PagerDuty's Events API v2 (`/v2/enqueue`): 202 with its success body."""
    receiver = Receiver("PagerDuty stand-in", _pagerduty_reply).start()
    try:
        yield receiver
    finally:
        receiver.stop()
