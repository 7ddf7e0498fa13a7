"""What every emulated API call passes before its handler runs: authentication, IAM, injected faults.

The REST server and the gRPC monitoring server share one Gate, so a token, a
`fail_next` and the request log mean the same on both. A call is admitted when its
bearer credential is live, its identity holds the method's permission on the emulated
project, and no fault is queued for the method or the permission.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsgraph.gcp_emulator.auth import Authority, ServiceAccount, permission_denied
from opsgraph.gcp_emulator.errors import ApiError, default_message


@dataclass(frozen=True)
class EmulatorRequest:
    """One call the emulator answered, as tests and fault injectors read it back."""

    method: str
    path: str
    permission: str | None
    status: int
    principal: str | None


@dataclass(frozen=True)
class Call:
    """An admitted call: the path parameters, the query, the JSON body, and who made it."""

    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]
    principal: ServiceAccount


Handler = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """One REST method: `template` as the client's rest_base.py spells the URI, e.g. `/v1/…/{instance}:failover`."""

    verb: str
    template: str
    method_id: str
    permission: str
    resource: str  # what a 403 names, a template over the same parameters
    handler: Handler

    def match(self, verb: str, path: str) -> dict[str, str] | None:
        if verb != self.verb:
            return None
        found = _compiled(self.template).fullmatch(path)
        return found.groupdict() if found else None


def _compiled(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/:]+)", re.escape(template))
    return re.compile(pattern)


class Gate:
    """Authentication, the per-method permission check, queued faults and the request log."""

    def __init__(self, authority: Authority, project: str) -> None:
        self.authority = authority
        self.project = project
        self._lock = threading.Lock()
        self._faults: dict[str, list[ApiError]] = {}
        self._log: list[EmulatorRequest] = []

    def authenticate(self, authorization: str | None) -> ServiceAccount:
        """The caller behind an Authorization value; ApiError 401 if there is no live credential."""
        return self.authority.principal(authorization)

    def authorize(self, account: ServiceAccount, permission: str, method_id: str, resource: str, project: str) -> None:
        """Nothing if the call may run; ApiError 403, or the fault queued for it, otherwise."""
        if project != self.project or not account.allows(permission):
            raise permission_denied(permission, resource)
        with self._lock:
            for key in (method_id, permission):
                queued = self._faults.get(key)
                if queued:
                    error = queued.pop(0)
                    if not queued:
                        del self._faults[key]
                    raise error

    def fail_next(self, permission_or_method: str, status: int, count: int = 1, message: str | None = None) -> None:
        """The next `count` calls needing that permission (or that method id) fail with `status`."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("fail_next needs an HTTP error status (400-599) and a count of at least 1")
        error = ApiError(status, message or default_message(status), reason="EMULATOR_INJECTED_FAULT")
        with self._lock:
            self._faults.setdefault(permission_or_method, []).extend([error] * count)

    def record(self, request: EmulatorRequest) -> None:
        with self._lock:
            self._log.append(request)

    def requests(self) -> list[EmulatorRequest]:
        with self._lock:
            return list(self._log)
