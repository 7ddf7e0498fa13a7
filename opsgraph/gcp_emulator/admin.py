"""The emulator's admin surface under `/emulator/…`: JSON, no auth (the server binds 127.0.0.1 only).

It mirrors the Python API for another process (OpsGraph's fault injector, a demo);
the routes are listed in the package docstring.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from opsgraph.gcp_emulator.emulator import GcpEmulator

Reply = tuple[int, dict[str, Any]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Guest(_Body):
    memory_used_pct: float | None = Field(default=None, ge=0, le=100)
    cpu_used_pct: float | None = Field(default=None, ge=0, le=100)


class _SqlMetrics(_Body):
    cpu_utilization: float | None = Field(default=None, ge=0, le=1)
    disk_utilization: float | None = Field(default=None, ge=0, le=1)


class _Fault(_Body):
    permission: str = Field(min_length=1, description="a permission (compute.instances.reset) or a method id")
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1)
    message: str | None = None


class _Key(_Body):
    name: str = Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    permissions: list[str] = Field(default_factory=lambda: ["*"])


class AdminApi:
    """Routes `/emulator/…` calls to the emulator they steer."""

    def __init__(self, emulator: GcpEmulator) -> None:
        self._emulator = emulator

    def handle(self, verb: str, path: str, body: dict[str, Any]) -> Reply:
        emulator = self._emulator
        parts = path.strip("/").split("/")[1:]
        try:
            match verb, parts:
                case "GET", []:
                    return 200, {
                        "emulator": "gcp", "project": emulator.config.project,
                        "api_endpoint": emulator.api_endpoint, "monitoring_endpoint": emulator.monitoring_endpoint,
                    }  # fmt: skip
                case "GET", ["tokens"]:
                    return 200, {"tokens": emulator.issued_tokens()}
                case "GET", ["requests"]:
                    return 200, {"requests": [dataclasses.asdict(request) for request in emulator.requests()]}
                case "GET", ["compute" | "redis" | "sql" as kind, name]:
                    return 200, emulator.instance(kind, name)
                case "GET", ["compute", project, zone, name, "guest"] if self._ours(project):
                    return 200, emulator.guest(zone, name)
                case "POST", ["compute", project, zone, name, "guest"] if self._ours(project):
                    guest = _Guest.model_validate(body)
                    emulator.set_guest(zone, name, guest.memory_used_pct, guest.cpu_used_pct)
                    return 200, emulator.instance("compute", name)
                case "POST", ["sql", project, name, "metrics"] if self._ours(project):
                    metrics = _SqlMetrics.model_validate(body)
                    emulator.set_sql_metrics(name, metrics.cpu_utilization, metrics.disk_utilization)
                    return 200, {"name": name, **metrics.model_dump(exclude_none=True)}
                case "POST", ["fail_next"]:
                    fault = _Fault.model_validate(body)
                    emulator.fail_next(fault.permission, fault.status, fault.count, fault.message)
                    return 200, fault.model_dump()
                case "POST", ["keys"]:
                    key = _Key.model_validate(body)
                    return 200, {"key_file": str(emulator.key_file(key.name, frozenset(key.permissions)))}
        except ValidationError as error:
            return 400, {"error": re.sub(r"\s+", " ", str(error))}
        except (KeyError, ValueError) as error:
            status = 404 if isinstance(error, KeyError) else 400
            return status, {"error": str(error).strip("'\"")}
        return 404, {"error": f"no admin route {verb} {path} (see the opsgraph.gcp_emulator docstring)"}

    def _ours(self, project: str) -> bool:
        return project == self._emulator.config.project
