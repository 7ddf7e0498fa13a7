"""Independent recovery checks: the scenario's own probe of whether the system works again.

Each check looks at the system the way its users would — a write to Redis succeeds, the
keys it held are still there, a query runs — through its own client, never through
OpsGraph's probes or verifier, so a verifier that lies cannot make a scenario pass.
A check returns `CheckResult(ok, detail)` and never raises for a server that is down
(that is a failed check, with what went wrong).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from opsgraph.tools.inventory import Inventory


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


Check = Callable[[Inventory, Mapping[str, Any]], CheckResult]


def _redis(inventory: Inventory, name: str) -> redis.Redis:
    connection = inventory.get(name).connection
    return redis.Redis(host=connection.host, port=connection.port, socket_timeout=3, socket_connect_timeout=3)


def redis_writes_succeed(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """An application write of `size_kb` (default 64) to Redis `resource` succeeds, and reads back."""
    key = f"eval:check:{uuid.uuid4().hex}"
    value = b"x" * (1024 * int(args.get("size_kb", 64)))
    try:
        client = _redis(inventory, str(args["resource"]))
        client.set(key, value, ex=60)
        ok = client.get(key) == value
        client.delete(key)
    except redis.RedisError as error:
        return CheckResult(False, f"write to {args['resource']} failed: {error}")
    return CheckResult(
        ok, f"a {len(value) // 1024} KiB write to {args['resource']} succeeded" if ok else "read back differed"
    )


CHECKS: dict[str, Check] = {
    "redis_writes_succeed": redis_writes_succeed,
}
