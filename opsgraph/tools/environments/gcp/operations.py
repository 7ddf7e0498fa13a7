"""Waiting for a long-running operation: Compute Engine zone operations, Memorystore's
google.longrunning operations and Cloud SQL's sql#operation, one loop for the three.

Every change on GCP is an operation that finishes later. A tool waits for it with a
deadline (`gcp.operation_timeout_s`, capped by the tool), reporting each status change
(a log line, and the list in the result). When the deadline passes, the operation is
not failed: it still runs at Google, and the error says so, with its name, so that no
one retries a change that is about to land.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.errors import Grant, google_call
from opsgraph.tools.environments.gcp.target import Target
from opsgraph.tools.errors import ToolError
from opsgraph.tools.inventory import GcpSettings

log = logging.getLogger(__name__)

_FIRST_POLL_S = 0.1
_MAX_POLL_S = 2.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class OperationState:
    """One look at an operation: whether it is over, its status in the API's words, and its error if any."""

    done: bool
    status: str
    error: str | None = None


@dataclass
class Waited:
    """What the wait saw: the operation's name, its statuses in order, and how long it took."""

    name: str
    statuses: list[str] = field(default_factory=list)
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "statuses": self.statuses, "waited_s": round(self.waited_s, 2)}


class Deadline:
    """One deadline for every operation of a tool call (`gcp.operation_timeout_s`, capped by the tool)."""

    def __init__(self, settings: GcpSettings, cap_s: float) -> None:
        self.timeout_s = min(settings.operation_timeout_s, cap_s)
        self._ends = time.monotonic() + self.timeout_s

    def left_s(self) -> float:
        return self._ends - time.monotonic()


class OperationFailed(ToolError):
    """The operation finished with an error: Google did not make the change."""


class OperationTimedOut(ToolError):
    """The deadline passed before the operation finished; it may still complete."""


def wait_for(
    name: str,
    target: Target,
    poll: Callable[[], OperationState],
    deadline: Deadline,
    progress: Progress | None = None,
) -> Waited:
    """Poll until the operation is done, the deadline passes (OperationTimedOut) or it fails (OperationFailed).

    It is always looked at once, even when the deadline has passed already.
    """
    report = progress or (lambda line: log.info("%s", line))
    waited = Waited(name)
    started = time.monotonic()
    pause = _FIRST_POLL_S
    while True:
        state = poll()
        waited.waited_s = time.monotonic() - started
        if not waited.statuses or waited.statuses[-1] != state.status:
            waited.statuses.append(state.status)
            report(f"operation {name} on {target}: {state.status} after {waited.waited_s:.1f} s")
        if state.done:
            if state.error:
                raise OperationFailed(f"operation {name} on {target} failed: {state.error}")
            return waited
        if deadline.left_s() < pause:
            raise OperationTimedOut(
                f"operation {name} on {target} did not finish within the {deadline.timeout_s:g} s this tool waits "
                f"(last status {state.status}); "
                "it has not failed and may still complete: look at the instance before trying again"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, _MAX_POLL_S)


def compute_poll(settings: GcpSettings, target: Target, grant: Grant, name: str) -> Callable[[], OperationState]:
    """A zone operation, read through ZoneOperations.get."""
    client = clients.zone_operations(settings)

    def poll() -> OperationState:
        with google_call(target, grant):
            operation = client.get(
                project=settings.project,
                zone=settings.zone,
                operation=name,
                timeout=clients.READ_TIMEOUT_S,
                retry=None,
            )
        errors = "; ".join(error.message for error in operation.error.errors) or operation.http_error_message
        return OperationState(operation.status.name == "DONE", operation.status.name, errors or None)

    return poll


def memorystore_poll(target: Target, grant: Grant, operation: Any) -> Callable[[], OperationState]:
    """A google.longrunning operation (api_core's Operation future), refreshed through its own client."""

    def poll() -> OperationState:
        with google_call(target, grant):
            done = operation.done()
        raw = operation.operation
        if done:
            error = raw.error.message if raw.HasField("error") else None
            return OperationState(True, "DONE", error or None)
        return OperationState(False, "RUNNING")

    return poll


def sql_poll(settings: GcpSettings, target: Target, grant: Grant, name: str) -> Callable[[], OperationState]:
    """A Cloud SQL sql#operation, read through SqlOperationsService.get."""
    from google.cloud.sqladmin_v1beta4 import SqlOperationsGetRequest

    client = clients.sql_operations(settings)
    request = SqlOperationsGetRequest(project=settings.project, operation=name)

    def poll() -> OperationState:
        with google_call(target, grant):
            operation = client.get(request=request, timeout=clients.READ_TIMEOUT_S, retry=None)
        errors = "; ".join(error.message or error.code for error in operation.error.errors)
        return OperationState(operation.status.name == "DONE", operation.status.name, errors or None)

    return poll
