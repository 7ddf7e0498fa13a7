"""PostgreSQL faults, injected through the sample app that uses the database.

The sessions that make these faults must outlive the process that injects them
(`opsgraph inject` exits at once; `opsgraph demo` goes on to fix), so OpsGraph asks
the app to open and hold them (`POST /load/database…`), as a leaking application
would. The app is the inventory's `http` resource whose `local.app_database` names the
target; its sessions show as `shop-load-connections`, `shop-load-blocker` and
`shop-load-blocked` in pg_stat_activity.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Inventory, Resource, ResourceKind
from opsgraph.tools.postgres_tools import connect
from opsgraph.tools.spec import ToolContext, ToolError

# The seed incident: 85+ % of the ordinary connection slots held, and queries queued behind a lock.
TARGET_USED_PCT = 88
BLOCKED_QUERIES = 5
# Slots left free for ordinary roles after the fault: the app's own requests, OpsGraph's probe and tools.
HEADROOM = 3
_TIMEOUT_S = 30.0


def app_url(target: Resource, inventory: Inventory) -> str:
    """Base URL of the app whose database is `target`."""
    for resource in inventory.resources:
        if resource.kind is ResourceKind.HTTP and resource.local.app_database == target.name:
            return f"http://{resource.connection.host}:{resource.connection.port}"
    raise ToolError(
        f"no http resource of the inventory has local.app_database: {target.name}; this fault is injected "
        "through the sample app, which holds the sessions after `opsgraph inject` exits"
    )


def _post(url: str, path: str, params: dict[str, int]) -> dict[str, Any]:
    try:
        response = httpx.post(f"{url}{path}", params=params, timeout=_TIMEOUT_S)
    except httpx.TransportError as error:
        raise ToolError(f"the sample app at {url} did not answer: {error}") from None
    if response.status_code == 409:
        raise ToolError(f"{path} is already injected at {url}: reset it first (POST {url}/load/reset)")
    if response.status_code >= 400:
        raise ToolError(f"{path} at {url} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def _usage(target: Resource) -> dict[str, int]:
    """Client connections as the probe counts them (this session left out), and the ordinary slots."""
    with connect(target) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) AS clients,"
            " current_setting('max_connections')::int AS max_connections,"
            " current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true)::int, 0) AS usable"
            " FROM pg_stat_activity"
        ).fetchone()
    assert row is not None  # an aggregate always returns one row
    return {key: int(value) for key, value in row.items()}


def _block(url: str) -> dict[str, Any]:
    result = _post(url, "/load/database/blocking", {"count": BLOCKED_QUERIES})
    return {"blocker_pid": result["holder_pid"], "blocked_pids": result["blocked_pids"]}


def _hold_connections(url: str, target: Resource) -> dict[str, Any]:
    """Open enough idle sessions that TARGET_USED_PCT of the ordinary slots are in use, and never more than fit.

    More than fit would leave the app retrying for the rest, re-taking every slot a fix frees.
    """
    usage = _usage(target)
    wanted = math.ceil(usage["usable"] * TARGET_USED_PCT / 100) - usage["clients"]
    room = usage["usable"] - usage["clients"] - HEADROOM
    count = min(wanted, room)
    if count < 1:
        return {"held": 0, **usage}
    result = _post(url, "/load/database", {"connections": count})
    if result.get("pending"):
        raise ToolError(f"the app could not open all {count} sessions ({result.get('error')}); reset the app")
    return {"held": result["opened"], "max_connections": usage["max_connections"]}


def _connection_overload(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    url = app_url(resource, ctx.inventory)
    # The lock first: its sessions must find slots before the leak takes them.
    blocking = _block(url)
    connections = _hold_connections(url, resource)
    return {"app": url, **connections, **blocking, "connections_used": _usage(resource)["clients"]}


def _blocking_queries(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    url = app_url(resource, ctx.inventory)
    return {"app": url, **_block(url)}


def reset_through_the_app(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Ask the sample app to release every fault it holds (POST /load/reset)."""
    url = app_url(resource, ctx.inventory)
    return {"app": url, "reset": _post(url, "/load/reset", {})}


SCENARIOS = [
    Scenario(
        name="postgres-connection-overload",
        target_kind=ResourceKind.POSTGRES,
        description=(
            f"through the sample app: {BLOCKED_QUERIES} queries blocked by a session idle in transaction, "
            f"then idle sessions until {TARGET_USED_PCT} % of the ordinary connection slots are in use"
        ),
        inject=_connection_overload,
        reset=reset_through_the_app,
    ),
    Scenario(
        name="postgres-blocking-queries",
        target_kind=ResourceKind.POSTGRES,
        description=f"through the sample app: {BLOCKED_QUERIES} queries blocked by a session idle in transaction",
        inject=_blocking_queries,
        reset=reset_through_the_app,
    ),
]
