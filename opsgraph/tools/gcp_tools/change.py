"""What every mutating GCP tool shares: the `dry_run` argument and its answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from opsgraph.tools.spec import ToolArgs


class GcpChangeArgs(ToolArgs):
    dry_run: bool = Field(False, description="Return the exact REST request this would send, and send nothing")


def dry_run_answer(request: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """A dry run's result: the request that would be sent (method, url, body), and what was read to decide it."""
    return {"dry_run": True, "request": request, **facts}
