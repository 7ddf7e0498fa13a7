"""Long-running operations as the emulated control planes run them: PENDING, RUNNING, then DONE.

An operation stays PENDING for the first half of `operation_delay_s` and RUNNING for the
second; when it is due, its effect runs (the change Google's control plane would make:
a VM's status, a CONFIG SET on the backing redis-server, …) and it is DONE, with the
error its effect raised if it failed. A timer completes it even if nobody polls, and
every read settles whatever is due first, so a poll just past the deadline always sees
DONE. Everything happens under the emulator's one lock.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from opsgraph.gcp_emulator.errors import ApiError

Phase = Literal["PENDING", "RUNNING", "DONE"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """A google.protobuf.Timestamp's JSON form: UTC, milliseconds, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Operation:
    """One operation on one target resource; `effect` is what DONE changes."""

    name: str
    numeric_id: str
    verb: str
    target: str
    user: str
    delay_s: float
    effect: Callable[[], None]
    inserted: datetime = field(default_factory=utc_now)
    begun: float = field(default_factory=time.monotonic)
    finished: datetime | None = None
    error: ApiError | None = None

    def phase(self, now: float | None = None) -> Phase:
        if self.finished is not None:
            return "DONE"
        elapsed = (time.monotonic() if now is None else now) - self.begun
        return "PENDING" if elapsed < self.delay_s / 2 else "RUNNING"

    @property
    def done(self) -> bool:
        return self.finished is not None


class OperationBook:
    """The operations of one emulated service; callers hold `lock` around every call."""

    def __init__(self, lock: threading.RLock, delay_s: float) -> None:
        self.lock = lock
        self.delay_s = delay_s
        self._changed = threading.Condition(lock)
        self._operations: dict[str, Operation] = {}
        self._timers: list[threading.Timer] = []

    def begin(self, verb: str, target: str, user: str, effect: Callable[[], None]) -> Operation:
        """Start an operation (the caller checked `in_progress` first); DONE at once when the delay is 0."""
        millis = int(time.time() * 1000)
        operation = Operation(
            name=f"operation-{millis}-{secrets.token_hex(6)}",
            numeric_id=str(int.from_bytes(secrets.token_bytes(7), "big")),
            verb=verb,
            target=target,
            user=user,
            delay_s=self.delay_s,
            effect=effect,
        )
        self._operations[operation.name] = operation
        if self.delay_s <= 0:
            self._finish(operation)
        else:
            self._timers = [timer for timer in self._timers if timer.is_alive()]
            timer = threading.Timer(self.delay_s, self._settle_locked)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)
        return operation

    def in_progress(self, target: str) -> Operation | None:
        self.settle()
        return next((op for op in self._operations.values() if op.target == target and not op.done), None)

    def get(self, name: str) -> Operation | None:
        self.settle()
        return self._operations.get(name)

    def wait(self, name: str, timeout_s: float) -> Operation | None:
        """The operation once DONE, or as it is after `timeout_s` (zoneOperations.wait's contract)."""
        deadline = time.monotonic() + timeout_s
        operation = self.get(name)
        while operation is not None and not operation.done and (left := deadline - time.monotonic()) > 0:
            self._changed.wait(left)
            self.settle()
        return operation

    def settle(self) -> None:
        """Finish every operation that is due."""
        now = time.monotonic()
        for operation in list(self._operations.values()):
            if not operation.done and now - operation.begun >= operation.delay_s:
                self._finish(operation)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def _settle_locked(self) -> None:
        with self.lock:
            self.settle()

    def _finish(self, operation: Operation) -> None:
        try:
            operation.effect()
        except ApiError as error:
            operation.error = error
        operation.finished = utc_now()
        self._changed.notify_all()
