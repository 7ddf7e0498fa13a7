"""Why a request failed, in the fixed vocabulary that metrics, logs and response bodies share.

An operator (or OpsGraph) sees the same ``cause`` in ``shop_errors_total{cause}``,
in the ``dependency_error`` log line and in the 503 body the user got, so a
symptom in one place leads straight to the others.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import psycopg
import redis.exceptions
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from shop.logs import log_event

if TYPE_CHECKING:
    from shop.metrics import Metrics

Dependency = Literal["database", "redis", "app"]


class Cause(StrEnum):
    DATABASE_POOL_TIMEOUT = "database_pool_timeout"
    DATABASE_UNAVAILABLE = "database_unavailable"
    DATABASE_TOO_MANY_CONNECTIONS = "database_too_many_connections"
    REDIS_OOM = "redis_oom"
    REDIS_UNAVAILABLE = "redis_unavailable"
    SLOW_QUERY = "slow_query"
    INTERNAL = "internal"


class FaultActive(RuntimeError):
    """A fault is already injected; reset it before injecting it again (answered with 409)."""


@dataclass(frozen=True)
class Failure:
    """A classified error: what users are told (status, cause) and the underlying text."""

    cause: Cause
    dependency: Dependency
    error: str

    @property
    def status(self) -> int:
        """503 when a dependency let us down (retrying may help), 500 for our own bugs."""
        return 500 if self.cause is Cause.INTERNAL else 503


class ConnectAttempts:
    """The outcome of the pool's latest attempt to open a connection.

    psycopg_pool opens connections in the background and only logs why one failed;
    a request then sees a bare PoolTimeout. Remembering the last failure (until a
    later attempt succeeds) tells a saturated pool apart from a database that
    refuses connections (``too many clients``) or does not answer at all.
    """

    def __init__(self) -> None:
        self._failure: tuple[float, psycopg.OperationalError] | None = None

    def failed(self, error: psycopg.OperationalError) -> None:
        self._failure = (time.monotonic(), error)

    def succeeded(self) -> None:
        self._failure = None

    def last_failure(self) -> tuple[float, psycopg.OperationalError] | None:
        """(age in seconds, error) of the last attempt if it failed, else None."""
        if self._failure is None:
            return None
        at, error = self._failure
        return time.monotonic() - at, error


def _too_many_connections(error: psycopg.Error) -> bool:
    text = str(error).lower()
    return (
        isinstance(error, pg_errors.TooManyConnections)
        or error.sqlstate == "53300"
        or "too many clients" in text
        or "remaining connection slots are reserved" in text
    )


def _database(error: BaseException, attempts: ConnectAttempts | None) -> Failure | None:
    if isinstance(error, PoolTimeout):
        last = attempts.last_failure() if attempts is not None else None
        if last is None:
            return Failure(Cause.DATABASE_POOL_TIMEOUT, "database", str(error))
        age, connect_error = last
        text = f"{error}; the pool's last connection attempt ({age:.1f} s ago) failed: {connect_error}"
        if _too_many_connections(connect_error):
            return Failure(Cause.DATABASE_TOO_MANY_CONNECTIONS, "database", text)
        return Failure(Cause.DATABASE_UNAVAILABLE, "database", text)
    if isinstance(error, pg_errors.QueryCanceled | pg_errors.LockNotAvailable):
        return Failure(Cause.SLOW_QUERY, "database", str(error))
    if isinstance(error, psycopg.OperationalError):
        if _too_many_connections(error):
            return Failure(Cause.DATABASE_TOO_MANY_CONNECTIONS, "database", str(error))
        return Failure(Cause.DATABASE_UNAVAILABLE, "database", str(error))
    if isinstance(error, psycopg.Error):
        return Failure(Cause.INTERNAL, "database", str(error))
    return None


def oom_text(error: redis.exceptions.RedisError) -> str:
    """Redis's refusal as the server sent it: redis-py strips the ``OOM`` error code."""
    text = str(error)
    return text if text.startswith("OOM") else f"OOM {text}"


def _redis(error: BaseException) -> Failure | None:
    if isinstance(error, redis.exceptions.OutOfMemoryError) or (
        isinstance(error, redis.exceptions.ResponseError) and str(error).startswith("OOM")
    ):
        return Failure(Cause.REDIS_OOM, "redis", oom_text(error))
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return Failure(Cause.REDIS_UNAVAILABLE, "redis", str(error) or type(error).__name__)
    if isinstance(error, redis.exceptions.RedisError):
        return Failure(Cause.INTERNAL, "redis", str(error))
    return None


def classify(error: BaseException, attempts: ConnectAttempts | None = None) -> Failure:
    """Name the cause of ``error``; anything unrecognised is an internal error (a bug).

    ``attempts`` (the pool's connect history) refines a PoolTimeout into the
    database refusing or not answering; without it a timeout is just a timeout.
    """
    failure = _database(error, attempts) or _redis(error)
    return failure or Failure(Cause.INTERNAL, "app", f"{type(error).__name__}: {error}")


class Reporter:
    """Counts and logs failures, so that the metric and the log line can never disagree."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def failure(self, failure: Failure, *, exc_info: BaseException | None = None, **fields: Any) -> None:
        """One failure users felt (or a degraded path took over from): count it and log it."""
        self._metrics.count_error(failure.cause)
        event = "internal_error" if failure.dependency == "app" else "dependency_error"
        extra = {"cause": failure.cause.value, "dependency": failure.dependency, "error": failure.error, **fields}
        logger = logging.getLogger("shop")
        logger.error(event, exc_info=exc_info, extra={"event": event, "fields": extra})

    def slow_query(self, query: str, duration_ms: float, threshold_ms: float) -> None:
        self._metrics.count_error(Cause.SLOW_QUERY)
        log_event(
            logging.WARNING,
            "slow_query",
            cause=Cause.SLOW_QUERY.value,
            query=query,
            duration_ms=round(duration_ms, 1),
            threshold_ms=threshold_ms,
        )
