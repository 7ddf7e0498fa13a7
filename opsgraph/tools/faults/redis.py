"""Redis faults: memory pressure is real data written into Redis until the probe sees it."""

from __future__ import annotations

from typing import Any

import redis

from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.redis_tools import MB
from opsgraph.tools.spec import ToolContext, ToolError

BALLAST_PREFIX = "opsgraph:fault:ballast:"


def fill_redis_memory(resource: Resource, target_pct: float = 97.0) -> dict[str, Any]:
    """Write ballast keys until used_memory reaches target_pct of maxmemory (or writes hit OOM)."""
    client = redis_client(resource, timeout_s=5.0)
    maxmemory = int(client.config_get("maxmemory").get("maxmemory") or 0)
    if maxmemory == 0:
        raise ToolError(f"{resource.name} has no maxmemory set; memory pressure needs a limit to press against")
    target = maxmemory * target_pct / 100
    written = 0
    while (used := int(client.info("memory")["used_memory"])) < target:
        # Big values while far from the target, small ones near it, so we land just above it.
        size = int(min(256 * 1024, max(4 * 1024, (target - used) / 4)))
        try:
            client.set(f"{BALLAST_PREFIX}{written}", b"x" * size)
        except redis.exceptions.OutOfMemoryError:
            break  # Redis now refuses writes: the pressure is as real as it gets
        written += 1
    return {
        "keys_written": written,
        "used_memory_mb": round(used / MB, 2),
        "maxmemory_mb": round(maxmemory / MB, 2),
        "used_pct": round(100 * used / maxmemory, 2),
    }


def _memory_pressure(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    return fill_redis_memory(resource)


def remove_ballast(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Delete the ballast keys written by the injection (data of its own, nothing else)."""
    client = redis_client(resource, timeout_s=5.0)
    keys = list(client.scan_iter(match=f"{BALLAST_PREFIX}*", count=1000))
    deleted = client.delete(*keys) if keys else 0
    return {"keys_deleted": int(deleted)}


SCENARIOS = [
    Scenario(
        name="redis-memory-pressure",
        target_kind=ResourceKind.REDIS,
        description="fill Redis to >= 95 % of maxmemory through the real client",
        inject=_memory_pressure,
        reset=remove_ballast,
    ),
]
