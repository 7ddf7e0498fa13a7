"""Redis tools, reached through the real `redis` client (and the environment for restarts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import redis
from pydantic import Field

from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec

MB = 1024 * 1024


def redis_client(resource: Resource, timeout_s: float = 2.0) -> redis.Redis:
    """A client with short timeouts: a hung Redis must not hang a probe or a fix."""
    connection = resource.connection
    return redis.Redis(
        host=connection.host,
        port=connection.port,
        username=connection.user,
        password=connection.password(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        decode_responses=True,
    )


_INFO_FIELDS = {
    "memory": ["used_memory", "used_memory_rss", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio"],
    "stats": ["evicted_keys", "rejected_connections", "total_commands_processed", "keyspace_hits", "keyspace_misses"],
    "clients": ["connected_clients", "blocked_clients", "maxclients"],
    "server": ["redis_version", "uptime_in_seconds", "process_id"],
}


def read_info(client: redis.Redis) -> dict[str, Any]:
    """The INFO fields OpsGraph reasons about, plus OOM-rejected writes from errorstats.

    One pipelined round trip: the verifier calls this several times a second.
    """
    pipe = client.pipeline(transaction=False)
    sections = ("memory", "stats", "clients", "server", "errorstats")
    for section in sections:
        pipe.info(section)
    pipe.config_get("maxclients")
    pipe.dbsize()
    *replies, config, dbsize = pipe.execute()
    raw: dict[str, Any] = {}
    for reply in replies:
        raw.update(reply)
    maxclients = config.get("maxclients")
    info = {field: raw.get(field) for fields in _INFO_FIELDS.values() for field in fields}
    info["maxclients"] = int(maxclients) if maxclients else None
    oom = raw.get("errorstat_OOM")
    info["oom_rejected_writes"] = int(oom["count"]) if isinstance(oom, dict) else 0
    info["dbsize"] = dbsize
    return info


class RedisInfoArgs(ToolArgs):
    section: Literal["memory", "stats", "clients", "server", "all"] = "all"


def redis_info(args: RedisInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Memory, stats, clients and server facts (read-only)."""
    with redis_client(ctx.resource(args.resource)) as client:
        info = read_info(client)
    if args.section == "all":
        return info
    keep = set(_INFO_FIELDS[args.section]) | {"oom_rejected_writes", "dbsize"}
    return {key: value for key, value in info.items() if key in keep}


def redis_memory_purge(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Ask the allocator to return dirty pages (MEMORY PURGE): frees fragmentation, not data."""
    client = redis_client(ctx.resource(args.resource))
    before = client.info("memory")
    client.memory_purge()
    after = client.info("memory")
    return {
        "used_memory_rss_before": before["used_memory_rss"],
        "used_memory_rss_after": after["used_memory_rss"],
        "fragmentation_before": before.get("mem_fragmentation_ratio"),
        "fragmentation_after": after.get("mem_fragmentation_ratio"),
    }


class RedisScaleMemoryArgs(ToolArgs):
    maxmemory_mb: Annotated[int, Field(ge=1, description="New maxmemory in MiB; must be above current usage")]


def redis_scale_memory(args: RedisScaleMemoryArgs, ctx: ToolContext) -> dict[str, Any]:
    """Raise maxmemory at runtime (CONFIG SET): relieves pressure, costs host memory."""
    client = redis_client(ctx.resource(args.resource))
    memory = client.info("memory")
    new_bytes = args.maxmemory_mb * MB
    if new_bytes <= memory["used_memory"]:
        raise ToolError(
            f"maxmemory {args.maxmemory_mb} MiB would be below current usage "
            f"({memory['used_memory'] / MB:.1f} MiB); refusing to make pressure worse"
        )
    client.config_set("maxmemory", str(new_bytes))
    return {"previous_maxmemory_mb": memory["maxmemory"] / MB, "maxmemory_mb": args.maxmemory_mb}


def _memory_ceiling(args: RedisScaleMemoryArgs, resource: Resource) -> str | None:
    ceiling = resource.policy.max_memory_mb
    if args.maxmemory_mb > ceiling:
        return f"maxmemory_mb {args.maxmemory_mb} is above this resource's policy ceiling of {ceiling} MiB"
    return None


def redis_flush(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Delete every key (FLUSHALL): frees everything, loses everything."""
    client = redis_client(ctx.resource(args.resource))
    keys = client.dbsize()
    client.flushall()
    return {"keys_deleted": keys}


def redis_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart the server through its environment: drops connections and unsaved data."""
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


def _client_summary(client: dict[str, Any]) -> dict[str, Any]:
    return {key: client.get(key) for key in ("id", "addr", "name", "age", "idle", "flags", "cmd", "db")}


def redis_clients(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Connected clients: how many, how idle, and the idlest ones (read-only)."""
    clients = redis_client(ctx.resource(args.resource)).client_list()
    idle = sorted(clients, key=lambda c: int(c.get("idle", 0)), reverse=True)
    buckets = {"idle_under_10s": 0, "idle_10s_to_300s": 0, "idle_over_300s": 0}
    for client in clients:
        seconds = int(client.get("idle", 0))
        key = "idle_under_10s" if seconds < 10 else "idle_10s_to_300s" if seconds < 300 else "idle_over_300s"
        buckets[key] += 1
    return {"connected": len(clients), **buckets, "idlest": [_client_summary(c) for c in idle[:10]]}


class RedisKillIdleClientsArgs(ToolArgs):
    min_idle_s: Annotated[int, Field(ge=10, description="Only clients idle at least this long")] = 300
    max_clients: Annotated[int, Field(ge=1, le=10_000, description="Stop after this many")] = 1000


# Replication links and pub/sub subscribers look idle but are doing their job.
_PROTECTED_FLAGS = set("MSP")


def redis_kill_idle_clients(args: RedisKillIdleClientsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Disconnect clients idle for a long time (leaked connections); never replicas or subscribers."""
    client = redis_client(ctx.resource(args.resource))
    own_id = client.client_id()
    killed: list[dict[str, Any]] = []
    for entry in client.client_list():
        if len(killed) >= args.max_clients:
            break
        if int(entry["id"]) == own_id or _PROTECTED_FLAGS & set(entry.get("flags", "")):
            continue
        if int(entry.get("idle", 0)) >= args.min_idle_s and client.client_kill_filter(_id=str(entry["id"])):
            killed.append(_client_summary(entry))
    return {"killed": len(killed), "clients": killed[:20]}


TOOLS: list[ToolSpec[Any]] = [
    ToolSpec(
        name="redis_info",
        description="Read Redis memory, stats, clients and server information.",
        args_model=RedisInfoArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.READ,
        run=redis_info,
        idempotent=True,
    ),
    ToolSpec(
        name="redis_clients",
        description="Count Redis clients by idle time and list the idlest ones.",
        args_model=ToolArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.READ,
        run=redis_clients,
        idempotent=True,
    ),
    ToolSpec(
        name="redis_kill_idle_clients",
        description="Disconnect Redis clients idle longer than min_idle_s (never replicas or subscribers).",
        args_model=RedisKillIdleClientsArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.DISRUPTIVE,
        run=redis_kill_idle_clients,
        idempotent=True,
    ),
    ToolSpec(
        name="redis_memory_purge",
        description="Release allocator fragmentation with MEMORY PURGE; keeps all data.",
        args_model=ToolArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.SAFE,
        run=redis_memory_purge,
        idempotent=True,
    ),
    ToolSpec(
        name="redis_scale_memory",
        description="Raise Redis maxmemory at runtime so writes stop failing with OOM.",
        args_model=RedisScaleMemoryArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.DISRUPTIVE,
        run=redis_scale_memory,
        idempotent=True,
        undo="redis_scale_memory with maxmemory_mb = previous_maxmemory_mb from the result",
        check_limits=_memory_ceiling,
    ),
    ToolSpec(
        name="redis_flush",
        description="Delete every key in the Redis server (FLUSHALL). Irreversible.",
        args_model=ToolArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.DESTRUCTIVE,
        run=redis_flush,
        idempotent=True,
    ),
    ToolSpec(
        name="redis_restart",
        description="Restart the Redis server through its environment; unsaved data is lost.",
        args_model=ToolArgs,
        target_kind=ResourceKind.REDIS,
        risk=Risk.DISRUPTIVE,
        run=redis_restart,
        idempotent=False,
    ),
]
