"""Redis probe: memory used vs maxmemory, clients vs maxclients, OOM-rejected writes, evictions."""

from __future__ import annotations

import redis

from opsgraph.graph.schemas import Health, Snapshot
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable
from opsgraph.tools.redis_tools import MB, read_info, redis_client


def probe_redis(resource: Resource) -> Snapshot:
    try:
        with redis_client(resource) as client:
            info = read_info(client)
    except (redis.RedisError, OSError) as error:
        return unreachable(resource, error)
    thresholds = resource.thresholds
    maxmemory = int(info["maxmemory"] or 0)
    used = int(info["used_memory"] or 0)
    memory_pct = 100.0 * used / maxmemory if maxmemory else 0.0
    clients_pct = 100.0 * int(info["connected_clients"] or 0) / int(info["maxclients"] or 1)
    memory_health = grade(memory_pct, thresholds.memory_used_pct) if maxmemory else Health.HEALTHY
    clients_health = grade(clients_pct, thresholds.clients_used_pct)

    band = thresholds.memory_used_pct
    limit = band.degraded if memory_health is Health.DEGRADED else band.failed
    findings = [
        Finding(
            memory_health,
            "redis_memory_pressure",
            f"memory {used / MB:.1f} MiB of maxmemory {maxmemory / MB:.1f} MiB "
            f"({memory_pct:.1f} %; {memory_health} at >= {limit:g} %)",
        ),
        Finding(
            clients_health,
            "redis_client_pressure",
            f"{info['connected_clients']} clients of maxclients {info['maxclients']} ({clients_pct:.1f} %)",
        ),
    ]
    return snapshot_of(
        resource,
        findings,
        {
            "memory_used_pct": round(memory_pct, 2),
            "used_memory_mb": round(used / MB, 2),
            "maxmemory_mb": round(maxmemory / MB, 2),
            "maxmemory_policy": info["maxmemory_policy"],
            "evicted_keys": info["evicted_keys"],
            "oom_rejected_writes": info["oom_rejected_writes"],
            "connected_clients": info["connected_clients"],
            "clients_used_pct": round(clients_pct, 2),
            "fragmentation_ratio": info["mem_fragmentation_ratio"],
        },
    )
