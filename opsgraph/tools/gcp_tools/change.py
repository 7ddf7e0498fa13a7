"""What every mutating GCP tool shares: the `dry_run` argument, its answer, and the operation deadline."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from opsgraph.tools.inventory import Resource
from opsgraph.tools.spec import ToolArgs


class GcpChangeArgs(ToolArgs):
    dry_run: bool = Field(False, description="Return the exact REST request this would send, and send nothing")


def dry_run_answer(request: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """A dry run's result: the request that would be sent (method, url, body), and what was read to decide it."""
    return {"dry_run": True, "request": request, **facts}


class Deadline:
    """One deadline for every operation of a tool call: `gcp.operation_timeout_s`, capped by the tool."""

    def __init__(self, resource: Resource, cap_s: float) -> None:
        self.timeout_s = min(resource.gcp_settings.operation_timeout_s, cap_s)
        self._ends = time.monotonic() + self.timeout_s

    def left_s(self) -> float:
        """Seconds left for the next operation (a little even when none is: one look tells its status)."""
        return max(0.1, self._ends - time.monotonic())
