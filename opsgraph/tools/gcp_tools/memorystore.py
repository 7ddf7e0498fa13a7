"""Memorystore for Redis tools: the instance through its API, its keys through its Redis (the data plane).

The data plane (`dataplane.redis_data_plane`) is read and flushed by the same code as
any Redis OpsGraph watches. Two refusals protect a Basic tier instance, which has no
replica: it cannot be failed over, and Google flushes its data when its size changes.
"""

from __future__ import annotations

from typing import Annotated, Any

import redis
from pydantic import Field

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.dataplane import redis_data_plane
from opsgraph.tools.environments.gcp.errors import GcpApiError, Grant, google_call
from opsgraph.tools.environments.gcp.instances import Json, memorystore_name, redis_instance
from opsgraph.tools.environments.gcp.operations import Deadline, Waited, memorystore_poll, wait_for
from opsgraph.tools.environments.gcp.permissions import PERMISSIONS, PROBE_PERMISSIONS
from opsgraph.tools.environments.gcp.rest import client_host, rest_request
from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.gcp_tools.change import GcpChangeArgs, dry_run_answer
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.redis_tools import flush_all, kept_client, read_info
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, declare

# A failover takes about a minute; a resize of a Standard tier instance several.
_MAX_WAIT_S = 1200.0
BASIC = "BASIC"


def redis_facts(instance: Json) -> dict[str, Any]:
    """What a change is judged by: state, tier, size and the zone the primary serves from."""
    return {
        "state": instance.get("state"),
        "tier": instance.get("tier"),
        "memory_size_gb": instance.get("memory_size_gb"),
        "current_location_id": instance.get("current_location_id"),
    }


def redis_observation(resource: Resource, ctx: ToolContext) -> str | None:
    """The zone the primary serves from: a failover that happened moves it."""
    try:
        instance = redis_instance(resource, PROBE_PERMISSIONS[ResourceKind.GCP_REDIS])
    except GcpApiError:
        return None
    return f"primary in {instance.get('current_location_id')}"


def _described(resource: Resource, method: str, request: Any) -> dict[str, Any]:
    from google.cloud.redis_v1.services.cloud_redis.transports.rest_base import _BaseCloudRedisRestTransport

    base = getattr(_BaseCloudRedisRestTransport, "_Base" + "".join(part.title() for part in method.split("_")))
    host = client_host(clients.memorystore(resource.gcp_settings))
    return rest_request(base._get_http_options(), request, host)


def _change(resource: Resource, grant: Grant, method: str, request: Any) -> Waited:
    """Send one Memorystore change and wait for its operation."""
    target = target_of(resource)
    client = clients.memorystore(resource.gcp_settings)
    with google_call(target, grant):
        operation = getattr(client, method)(request=request, timeout=clients.CALL_TIMEOUT_S, retry=None)
    name = operation.operation.name
    return wait_for(
        name, target, memorystore_poll(target, grant, operation), Deadline(resource.gcp_settings, _MAX_WAIT_S)
    )


@declare(risk=Risk.READ, target=ResourceKind.GCP_REDIS, idempotent=True)
def gcp_redis_info(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read a Memorystore instance (under "instance": state, tier, size, endpoint) and its Redis INFO
    (memory, clients, stats, OOM-rejected writes) as redis_info reports it."""
    resource = ctx.resource(args.resource)
    instance = redis_instance(resource, PERMISSIONS["gcp_redis_info"])
    plane = redis_data_plane(resource, instance)
    address = f"{plane.connection.host}:{plane.connection.port}"
    try:
        info = read_info(kept_client(plane))
    except (redis.RedisError, OSError) as error:
        return {"instance": instance, "data_plane": address, "data_plane_error": f"{type(error).__name__}: {error}"}
    return {"instance": instance, "data_plane": address, **info}


@declare(risk=Risk.DESTRUCTIVE, target=ResourceKind.GCP_REDIS, idempotent=True, may_change=frozenset({"keys"}))
def gcp_redis_flush(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Delete every key of a Memorystore instance's Redis (FLUSHALL on its endpoint). Irreversible."""
    resource = ctx.resource(args.resource)
    plane = redis_data_plane(resource, redis_instance(resource, PERMISSIONS["gcp_redis_flush"]))
    if args.dry_run:
        address = f"redis://{plane.connection.host}:{plane.connection.port}"
        keys = kept_client(plane).dbsize()
        return dry_run_answer({"method": "FLUSHALL", "url": address, "body": None}, keys=keys)
    return flush_all(plane)


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.GCP_REDIS, idempotent=False, observe=redis_observation)
def gcp_redis_restart(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart a Standard tier Memorystore instance's Redis by failing over to its replica (keeps the data
    the replica has); refused for a Basic tier instance, which has no replica.

    Memorystore has no restart: a failover (LIMITED_DATA_LOSS mode, which refuses when the
    replica lags too far behind) promotes the replica, and every client reconnects.
    """
    from google.cloud import redis_v1

    resource = ctx.resource(args.resource)
    grant = PERMISSIONS["gcp_redis_restart"]
    before = redis_instance(resource, grant)
    target = target_of(resource)
    if before.get("tier") == BASIC:
        raise ToolError(
            f"{target} is a Basic tier instance: it has no replica to fail over to, and Memorystore offers no "
            "other restart; refusing (a human can upgrade it to the Standard tier)"
        )
    request = redis_v1.FailoverInstanceRequest(
        name=memorystore_name(resource),
        data_protection_mode=redis_v1.FailoverInstanceRequest.DataProtectionMode.LIMITED_DATA_LOSS,
    )
    if args.dry_run:
        return dry_run_answer(_described(resource, "failover_instance", request), before=redis_facts(before))
    waited = _change(resource, grant, "failover_instance", request)
    after = redis_instance(resource, grant)
    return {"operation": waited.as_dict(), "before": redis_facts(before), "after": redis_facts(after)}


class GcpRedisScaleMemoryArgs(GcpChangeArgs):
    memory_size_gb: Annotated[
        int, Field(ge=1, le=300, description="New instance size in GB; must be above the current size")
    ]


def _memory_ceiling(args: GcpRedisScaleMemoryArgs, resource: Resource) -> str | None:
    ceiling = resource.policy.max_memory_mb
    wanted = args.memory_size_gb * 1024
    if wanted <= ceiling:
        return None
    return (
        f"memory_size_gb {args.memory_size_gb} ({wanted} MiB) is above this resource's policy ceiling of "
        f"{ceiling} MiB (policy.max_memory_mb)"
    )


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.GCP_REDIS,
    idempotent=True,
    check_limits=_memory_ceiling,
    undo="a human scales it back to before.memory_size_gb once usage is below it",
)
def gcp_redis_scale_memory(args: GcpRedisScaleMemoryArgs, ctx: ToolContext) -> dict[str, Any]:
    """Raise a Standard tier Memorystore instance's size (never lowers it) and wait for the resize;
    refused for a Basic tier instance, whose data Google flushes when it is scaled."""
    from google.cloud import redis_v1
    from google.protobuf.field_mask_pb2 import FieldMask

    resource = ctx.resource(args.resource)
    if (refusal := _memory_ceiling(args, resource)) is not None:
        raise ToolError(refusal)
    grant = PERMISSIONS["gcp_redis_scale_memory"]
    before = redis_instance(resource, grant)
    target = target_of(resource)
    if before.get("tier") == BASIC:
        raise ToolError(
            f"{target} is a Basic tier instance: Memorystore flushes a Basic instance's data when it is "
            "scaled; refusing (scale it by hand once losing its keys is acceptable)"
        )
    current = int(before.get("memory_size_gb") or 0)
    if args.memory_size_gb == current:
        return {"changed": False, "before": redis_facts(before), "after": redis_facts(before)}
    if args.memory_size_gb < current:
        raise ToolError(
            f"memory_size_gb {args.memory_size_gb} is below the current {current} GB: "
            "this tool only raises it; refusing"
        )
    request = redis_v1.UpdateInstanceRequest(
        update_mask=FieldMask(paths=["memory_size_gb"]),
        instance=redis_v1.Instance(name=memorystore_name(resource), memory_size_gb=args.memory_size_gb),
    )
    if args.dry_run:
        return dry_run_answer(_described(resource, "update_instance", request), before=redis_facts(before))
    waited = _change(resource, grant, "update_instance", request)
    after = redis_instance(resource, grant)
    return {
        "changed": True,
        "operation": waited.as_dict(),
        "before": redis_facts(before),
        "after": redis_facts(after),
    }
