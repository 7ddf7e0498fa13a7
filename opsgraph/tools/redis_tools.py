"""Redis tools, reached through the real `redis` client (and the environment for restarts).

Probes and tools talk to Redis through one connection per server that OpsGraph opens
once and keeps (`kept_client`). A Redis at `maxclients` refuses every *new* connection
with "max number of clients reached": a tool that connected afresh could neither tell
that server from a dead one nor free a slot on it. A connection opened while there was
room keeps working when the server is full, so OpsGraph can still measure the clients
and disconnect the idle ones. Its name starts with `opsgraph`, so that no OpsGraph tool
ever disconnects it (or another OpsGraph process's).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import redis
from pydantic import Field

from opsgraph.tools.connections import RETRY
from opsgraph.tools.identity import server_identity
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec, above_ceiling, declare

MB = 1024 * 1024
# Every client OpsGraph names starts with this; `redis_kill_idle_clients` never touches them.
OWN_CLIENT_PREFIX = "opsgraph"
KEPT_CLIENT_NAME = f"{OWN_CLIENT_PREFIX}-kept"
# Clients idle less than this are taken for live ones: never disconnected.
MIN_IDLE_FLOOR_S = 10
_TIMEOUT_S = 2.0
# Callers of the one kept connection queue for it at most this long (a command on it
# is bounded by the socket timeout, twice with the retry).
_POOL_WAIT_S = 3 * _TIMEOUT_S


@dataclass(frozen=True)
class _Kept:
    client: redis.Redis
    password: str | None  # what it logs in with; a rotated secret needs a new login


_KEPT: dict[tuple[str, int, str | None], _Kept] = {}
_KEPT_LOCK = threading.Lock()


def _kept_pool(resource: Resource, password: str | None) -> redis.BlockingConnectionPool:
    """A pool of exactly one connection: callers queue for it instead of opening a second one,
    which a full server would refuse."""
    connection = resource.connection
    # redis-py leaves the pool constructors unannotated.
    return redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        max_connections=1,
        timeout=_POOL_WAIT_S,
        host=connection.host,
        port=connection.port,
        username=connection.user,
        password=password,
        socket_timeout=_TIMEOUT_S,
        socket_connect_timeout=_TIMEOUT_S,
        decode_responses=True,
        client_name=KEPT_CLIENT_NAME,
        retry=RETRY,
    )


def kept_client(resource: Resource) -> redis.Redis:
    """OpsGraph's connection to this server (host, port, user), opened once per process and kept.

    The socket stays open between calls; when the server restarted (the socket is dead),
    the next command reconnects once. Shared: never disconnect its pool (`forget_kept_clients` does).
    """
    connection = resource.connection
    key = (connection.host, connection.port, connection.user)
    password = connection.password()
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
        if kept is not None and kept.password == password:
            return kept.client
        if kept is not None:
            kept.client.connection_pool.disconnect()
        client = redis.Redis(connection_pool=_kept_pool(resource, password))
        _KEPT[key] = _Kept(client, password)
        return client


def forget_kept_clients() -> None:
    """Close every kept connection: the process no longer holds a way into a full server."""
    with _KEPT_LOCK:
        for kept in _KEPT.values():
            kept.client.connection_pool.disconnect()
        _KEPT.clear()


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


@declare(risk=Risk.READ, target=ResourceKind.REDIS, idempotent=True)
def redis_info(args: RedisInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read Redis memory, stats, clients and server information."""
    info = read_info(kept_client(ctx.resource(args.resource)))
    if args.section == "all":
        return info
    keep = set(_INFO_FIELDS[args.section]) | {"oom_rejected_writes", "dbsize"}
    return {key: value for key, value in info.items() if key in keep}


@declare(risk=Risk.SAFE, target=ResourceKind.REDIS, idempotent=True)
def redis_memory_purge(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Release allocator fragmentation with MEMORY PURGE; keeps all data."""
    client = kept_client(ctx.resource(args.resource))
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


def _memory_ceiling(args: RedisScaleMemoryArgs, resource: Resource) -> str | None:
    return above_ceiling("maxmemory_mb", args.maxmemory_mb, resource.policy.max_memory_mb, " MiB")


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.REDIS,
    idempotent=True,
    undo="a human sets maxmemory back to previous_maxmemory_mb (CONFIG SET) once usage is below it",
    check_limits=_memory_ceiling,
)
def redis_scale_memory(args: RedisScaleMemoryArgs, ctx: ToolContext) -> dict[str, Any]:
    """Raise Redis maxmemory at runtime (never lowers it) so writes stop failing with OOM.

    CONFIG SET relieves the pressure at once and costs host memory. Only ever up: a tool
    named for relief must not be usable to squeeze a server (a lower value, or a limit on
    a server that has none, is refused).
    """
    client = kept_client(ctx.resource(args.resource))
    memory = client.info("memory")
    new_bytes = args.maxmemory_mb * MB
    current = int(memory["maxmemory"] or 0)
    if current == 0:
        raise ToolError("maxmemory is 0 (no limit): setting one would lower it, not raise it; refusing")
    if new_bytes <= current:
        raise ToolError(
            f"maxmemory {args.maxmemory_mb} MiB is not above the current {current / MB:g} MiB: "
            "this tool only raises it; refusing"
        )
    if new_bytes <= memory["used_memory"]:
        raise ToolError(
            f"maxmemory {args.maxmemory_mb} MiB would be below current usage "
            f"({memory['used_memory'] / MB:.1f} MiB); refusing to make pressure worse"
        )
    client.config_set("maxmemory", str(new_bytes))
    return {"previous_maxmemory_mb": memory["maxmemory"] / MB, "maxmemory_mb": args.maxmemory_mb}


class RedisScaleClientsArgs(ToolArgs):
    maxclients: Annotated[int, Field(ge=1, description="New maxclients; must be above the clients connected now")]


def _maxclients(client: redis.Redis) -> int:
    value = client.config_get("maxclients").get("maxclients")
    if value is None:  # CONFIG renamed or restricted (managed Redis)
        raise ToolError("CONFIG GET maxclients returned nothing: this server does not expose its maxclients")
    return int(value)


def _clients_ceiling(args: RedisScaleClientsArgs, resource: Resource) -> str | None:
    return above_ceiling("maxclients", args.maxclients, resource.policy.max_connections, " connections")


@declare(
    # A capacity change that outlives the incident and can hide a connection leak
    # (each client costs a file descriptor and memory): a human should agree, as
    # for redis_scale_memory. Nothing is dropped, so not destructive.
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.REDIS,
    idempotent=True,
    undo="redis_scale_clients with maxclients = previous_maxclients from the result",
    check_limits=_clients_ceiling,
)
def redis_scale_clients(args: RedisScaleClientsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set Redis maxclients at runtime (CONFIG SET, no restart); reports the value in force.

    Redis caps maxclients by the file descriptors it may open (its limit minus 32 for
    its own files): it refuses a value it cannot honour, so the result reports the
    value actually in force, read back after the change.
    """
    client = kept_client(ctx.resource(args.resource))
    previous = _maxclients(client)
    connected = int(client.info("clients")["connected_clients"])
    if args.maxclients <= connected:
        raise ToolError(
            f"maxclients {args.maxclients} would be at or below the {connected} clients connected now; "
            "refusing to lock out clients"
        )
    try:
        client.config_set("maxclients", str(args.maxclients))
    except redis.ResponseError as error:
        raise ToolError(
            f"Redis refused maxclients {args.maxclients}: {error}; maxclients in force: {_maxclients(client)}"
        ) from None
    in_force = _maxclients(client)
    return {
        "previous_maxclients": previous,
        "requested_maxclients": args.maxclients,
        "maxclients": in_force,
        "connected_clients": connected,
    }


@declare(
    risk=Risk.DESTRUCTIVE,
    target=ResourceKind.REDIS,
    idempotent=True,
    may_change=frozenset({"keys"}),  # emptying the keyspace is the point
)
def redis_flush(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Delete every key in the Redis server (FLUSHALL). Irreversible."""
    return flush_all(ctx.resource(args.resource))


def flush_all(resource: Resource) -> dict[str, Any]:
    """redis_flush on the server `resource` reaches (a Memorystore instance's data plane too)."""
    client = kept_client(resource)
    keys = client.dbsize()
    client.flushall()
    return {"keys_deleted": keys}


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.REDIS, idempotent=False, observe=server_identity)
def redis_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart the Redis server through its environment; unsaved data is lost.

    Every client connection drops with it.
    """
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


# ---- clients: who holds them, and disconnecting the idle ones

# Replication links, pub/sub subscribers and clients blocked in BLPOP & co look idle but
# are doing their job (M: a master link, S: a replica, P: a subscriber, b: blocked).
_PROTECTED_FLAGS = set("MSPb")


def protected(entry: dict[str, Any]) -> str | None:
    """Why this client must never be disconnected by OpsGraph, or None."""
    if str(entry.get("name") or "").startswith(OWN_CLIENT_PREFIX):
        return "OpsGraph's own connection"
    if flags := _PROTECTED_FLAGS & set(str(entry.get("flags", ""))):
        return f"flags {''.join(sorted(flags))} (replication, pub/sub or blocked)"
    return None


def _idle(entry: dict[str, Any]) -> int:
    return int(entry.get("idle", 0))


def _client_summary(client: dict[str, Any]) -> dict[str, Any]:
    return {key: client.get(key) for key in ("id", "addr", "name", "age", "idle", "flags", "cmd", "db")}


def _holder(entry: dict[str, Any]) -> tuple[str, str]:
    """Who opened a client: its name and the host part of its address (the port differs per socket)."""
    return str(entry.get("name") or "(unnamed)"), str(entry.get("addr", "")).rpartition(":")[0]


def _holders(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clients grouped by name and host, the biggest group first."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in clients:
        groups.setdefault(_holder(entry), []).append(entry)
    ranked = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)
    return [
        {
            "name": name,
            "host": host,
            "clients": len(entries),
            "idle_min_s": min(_idle(e) for e in entries),
            "idle_max_s": max(_idle(e) for e in entries),
        }
        for (name, host), entries in ranked[:10]
    ]


def _killable(clients: list[dict[str, Any]], min_idle_s: int) -> list[dict[str, Any]]:
    """Clients `redis_kill_idle_clients` would disconnect at this threshold, the idlest (then oldest) first."""
    found = [c for c in clients if protected(c) is None and _idle(c) >= min_idle_s]
    return sorted(found, key=lambda c: (_idle(c), int(c.get("age", 0))), reverse=True)


@declare(risk=Risk.READ, target=ResourceKind.REDIS, idempotent=True)
def redis_clients(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Count Redis clients against maxclients by idle time and by holder (name, host),
    and list the idle ones that could be disconnected."""
    client = kept_client(ctx.resource(args.resource))
    clients = client.client_list()
    maxclients = _maxclients(client)
    buckets = {"idle_under_10s": 0, "idle_10s_to_300s": 0, "idle_over_300s": 0}
    for entry in clients:
        seconds = _idle(entry)
        key = "idle_under_10s" if seconds < 10 else "idle_10s_to_300s" if seconds < 300 else "idle_over_300s"
        buckets[key] += 1
    killable = _killable(clients, MIN_IDLE_FLOOR_S)
    reasons = Counter(why for entry in clients if (why := protected(entry)) is not None)
    return {
        "connected": len(clients),
        "maxclients": maxclients,
        **buckets,
        "holders": _holders(clients),
        # Not protected and idle at least MIN_IDLE_FLOOR_S: what redis_kill_idle_clients may free.
        "idle_killable": {
            "count": len(killable),
            "min_idle_s": min((_idle(c) for c in killable), default=None),
            "max_idle_s": max((_idle(c) for c in killable), default=None),
            "holders": _holders(killable),
        },
        "protected": dict(reasons),
        "idlest": [_client_summary(c) for c in sorted(clients, key=_idle, reverse=True)[:10]],
    }


class RedisKillIdleClientsArgs(ToolArgs):
    min_idle_s: Annotated[int, Field(ge=MIN_IDLE_FLOOR_S, description="Only clients idle at least this long")] = 300
    max_clients: Annotated[int, Field(ge=1, le=10_000, description="Stop after this many (the idlest first)")] = 1000


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.REDIS, idempotent=True)
def redis_kill_idle_clients(args: RedisKillIdleClientsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Disconnect Redis clients idle longer than min_idle_s, idlest first
    (never OpsGraph's own, replicas, subscribers or blocked clients).

    Long-idle clients are what leaked connections look like; `protected` says who is never touched.
    """
    client = kept_client(ctx.resource(args.resource))
    own_id = client.client_id()
    candidates = [c for c in _killable(client.client_list(), args.min_idle_s) if int(c["id"]) != own_id]
    killed: list[dict[str, Any]] = []
    for entry in candidates[: args.max_clients]:
        # A client that closed meanwhile is simply not counted.
        if client.client_kill_filter(_id=str(entry["id"])):
            killed.append(_client_summary(entry))
    return {"killed": len(killed), "clients": killed[:20]}


TOOLS: list[ToolSpec[Any]] = [
    redis_info,
    redis_clients,
    redis_kill_idle_clients,
    redis_scale_clients,
    redis_memory_purge,
    redis_scale_memory,
    redis_flush,
    redis_restart,
]
