"""GCP faults: real pressure on a managed instance's data plane, and an emulated guest's memory leak.

- ``gcp-redis-memory-pressure``: ballast written into the Memorystore instance's Redis
  through the real client, as for a Redis of OpsGraph's own (`faults.redis`).
- ``gcp-sql-connection-overload``: a detached worker's idle sessions take every ordinary
  slot of the Cloud SQL instance's PostgreSQL (`faults.sessions`' idle leak).
- ``gcp-compute-memory-pressure``: a VM's guest memory at 97 %. OpsGraph never logs into a
  VM, and what the Ops Agent reports cannot be faked on a real one from outside, so this
  fault drives the local GCP emulator's emulated guest (its admin route) and refuses any
  other endpoint.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsgraph.tools.environments.gcp.dataplane import postgres_data_plane, redis_data_plane
from opsgraph.tools.faults.redis import fill_redis_memory, remove_ballast
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.faults.sessions import SCENARIOS as SESSION_SCENARIOS
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.spec import ToolContext, ToolError

LEAKED_MEMORY_PCT = 97.0
_ADMIN_TIMEOUT_S = 5.0
_IDLE_LEAK = next(scenario for scenario in SESSION_SCENARIOS if scenario.name == "postgres-idle-leak")


def _redis_plane(resource: Resource) -> Resource:
    if not resource.connection.port:
        raise ToolError(f"{resource.name}: the fault writes to the instance's Redis, so give its connection a port")
    return redis_data_plane(resource, None)


def _sql_plane(resource: Resource) -> Resource:
    if not resource.connection.port:
        raise ToolError(f"{resource.name}: the fault opens sessions on the instance, so give its connection a port")
    return postgres_data_plane(resource, None)


def _leak_guest_memory(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Set the emulated guest's memory use through the emulator's admin route (a reset of the VM ends it)."""
    gcp = resource.gcp_settings
    if gcp.api_endpoint is None or not gcp.api_endpoint.startswith("http://127.0.0.1"):
        raise ToolError(
            f"{resource.name}: gcp-compute-memory-pressure drives the local GCP emulator's emulated guest; "
            "a real VM's memory can only be filled from inside it"
        )
    path = f"/emulator/compute/{gcp.project}/{gcp.zone}/{gcp.instance_name(resource.name)}/guest"
    body = {"memory_used_pct": LEAKED_MEMORY_PCT}
    reply = httpx.post(gcp.api_endpoint + path, json=body, timeout=_ADMIN_TIMEOUT_S)
    if reply.status_code != 200:
        raise ToolError(f"the GCP emulator refused the guest change ({reply.status_code}): {reply.text[:200]}")
    return {"guest_memory_used_pct": LEAKED_MEMORY_PCT, "emulated": True}


SCENARIOS = [
    Scenario(
        name="gcp-redis-memory-pressure",
        target_kind=ResourceKind.GCP_REDIS,
        description="fill a Memorystore instance's Redis to >= 95 % of its memory through the real client",
        inject=lambda resource, ctx: fill_redis_memory(_redis_plane(resource)),
        reset=lambda resource, ctx: remove_ballast(_redis_plane(resource), ctx),
    ),
    Scenario(
        name="gcp-sql-connection-overload",
        target_kind=ResourceKind.GCP_SQL,
        description=(
            "a detached worker's idle sessions (an ordinary role) take every ordinary connection slot of a "
            "Cloud SQL instance"
        ),
        inject=lambda resource, ctx: _IDLE_LEAK.inject(_sql_plane(resource), ctx),
        reset=lambda resource, ctx: _reset_sessions(_sql_plane(resource), ctx),
    ),
    Scenario(
        name="gcp-compute-memory-pressure",
        target_kind=ResourceKind.GCP_COMPUTE,
        description=f"the GCP emulator's guest of a VM leaks memory to {LEAKED_MEMORY_PCT:g} % (emulator only)",
        inject=_leak_guest_memory,  # no reset: the fix (a reset of the VM) ends it, as on a real VM
    ),
]


def _reset_sessions(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    assert _IDLE_LEAK.reset is not None  # the idle leak's holder is stopped by its reset
    return _IDLE_LEAK.reset(resource, ctx)
