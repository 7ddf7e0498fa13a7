"""Per-request observation: metrics, one log line, and failures turned into JSON errors.

A plain ASGI middleware (not BaseHTTPMiddleware) so it sees the status code
actually sent and any exception a route let escape. Such an exception is
classified (``shop.errors``), counted, logged with its cause, and answered with
503 (a dependency failed) or 500 (a bug) and a JSON body naming the cause.
"""

from __future__ import annotations

import logging
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shop.errors import ConnectAttempts, Failure, Reporter, classify
from shop.logs import log_event
from shop.metrics import Metrics

UNMATCHED_ROUTE = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/products/{id}``), so labels stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestObserver:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, reporter: Reporter, attempts: ConnectAttempts) -> None:
        self.app = app
        self.metrics = metrics
        self.reporter = reporter
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False
        failure: Failure | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
            await send(message)

        method = scope["method"]
        try:
            await self.app(scope, receive, observed_send)
        except Exception as error:
            failure = classify(error, self.attempts)
            internal = failure.dependency == "app"
            fields = {"method": method, "route": route_template(scope)}
            self.reporter.failure(failure, exc_info=error if internal else None, **fields)
            if response_started:
                raise  # too late for an error body; the server closes the connection
            body = {"error": _summary(failure), "cause": failure.cause.value, "detail": failure.error}
            await JSONResponse(body, status_code=failure.status)(scope, receive, observed_send)
        finally:
            route = route_template(scope)
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(method, route, status, elapsed)
            fields = {"method": method, "route": route, "path": scope["path"], "status": status}
            if failure is not None:
                fields["cause"] = failure.cause.value
            level = logging.ERROR if status >= 500 else logging.INFO
            log_event(level, "request", **fields, duration_ms=round(elapsed * 1000, 2))


def _summary(failure: Failure) -> str:
    if failure.dependency == "app":
        return "internal error"
    return f"{failure.dependency} failed ({failure.cause.value})"
