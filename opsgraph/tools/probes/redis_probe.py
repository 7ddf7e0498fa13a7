"""Redis probe: memory used vs maxmemory, clients vs maxclients, OOM-rejected writes, evictions.

It measures through OpsGraph's kept connection (`kept_client`), so a Redis at
maxclients — which refuses every new connection — is still measured, and graded
`redis_clients_exhausted`, not `redis_unreachable`: a full server is up, and a restart
would be the wrong fix. When OpsGraph holds no connection yet and a new one is refused
as "max number of clients reached", the grade is the same symptom, with a reason that
says nothing could be measured.
"""

from __future__ import annotations

import time

import redis

from opsgraph.tools.environments.liveness import REDIS_FULL
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable
from opsgraph.tools.redis_tools import MB, kept_client, read_info
from opsgraph.tools.snapshot import Health, Snapshot

CLIENTS_EXHAUSTED = "redis_clients_exhausted"  # clients at/over the failed band of maxclients
CLIENT_PRESSURE = "redis_client_pressure"  # clients in the degraded band
_SEVERITY = [Health.FAILED, Health.DEGRADED, Health.HEALTHY]


def probe_redis(resource: Resource) -> Snapshot:
    try:
        info = read_info(kept_client(resource))
    except redis.ConnectionError as error:
        if REDIS_FULL in str(error):
            return _full_and_unmeasured(resource, error)
        return unreachable(resource, error)
    except (redis.RedisError, OSError) as error:
        return unreachable(resource, error)
    thresholds = resource.thresholds
    maxmemory = int(info["maxmemory"] or 0)
    used = int(info["used_memory"] or 0)
    memory_pct = 100.0 * used / maxmemory if maxmemory else 0.0
    connected = int(info["connected_clients"] or 0)
    maxclients = int(info["maxclients"] or 1)
    clients_pct = 100.0 * connected / maxclients
    memory_health = grade(memory_pct, thresholds.memory_used_pct) if maxmemory else Health.HEALTHY
    clients_health = grade(clients_pct, thresholds.clients_used_pct)

    band = thresholds.memory_used_pct
    limit = band.degraded if memory_health is Health.DEGRADED else band.failed
    clients_band = thresholds.clients_used_pct
    clients_limit = clients_band.degraded if clients_health is Health.DEGRADED else clients_band.failed
    refusing = "; Redis refuses new connections" if connected >= maxclients else ""
    findings = [
        Finding(
            memory_health,
            "redis_memory_pressure",
            f"memory {used / MB:.1f} MiB of maxmemory {maxmemory / MB:.1f} MiB "
            f"({memory_pct:.1f} %; {memory_health} at >= {limit:g} %)",
        ),
        Finding(
            clients_health,
            CLIENTS_EXHAUSTED if clients_health is Health.FAILED else CLIENT_PRESSURE,
            f"{connected} clients of maxclients {maxclients} ({clients_pct:.1f} %; {clients_health} at "
            f">= {clients_limit:g} %){refusing}; {info['rejected_connections']} connections rejected so far",
        ),
    ]
    return snapshot_of(
        resource,
        # The worst finding names the symptom: a full server is the incident, not a warm one.
        sorted(findings, key=lambda finding: _SEVERITY.index(finding.health)),
        {
            "memory_used_pct": round(memory_pct, 2),
            "used_memory_mb": round(used / MB, 2),
            "maxmemory_mb": round(maxmemory / MB, 2),
            "maxmemory_policy": info["maxmemory_policy"],
            "evicted_keys": info["evicted_keys"],
            "oom_rejected_writes": info["oom_rejected_writes"],
            "connected_clients": connected,
            "maxclients": maxclients,
            "clients_used_pct": round(clients_pct, 2),
            "rejected_connections": info["rejected_connections"],
            "fragmentation_ratio": info["mem_fragmentation_ratio"],
        },
    )


def _full_and_unmeasured(resource: Resource, error: redis.ConnectionError) -> Snapshot:
    """A server that answers "max number of clients reached" is up and full, measured or not."""
    where = f"{resource.connection.host}:{resource.connection.port}"
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=Health.FAILED,
        symptom=CLIENTS_EXHAUSTED,
        reasons=[
            f"redis at {where} refuses new connections ({error}): it is up and at maxclients; "
            "OpsGraph holds no connection to it, so it cannot measure who holds the clients"
        ],
        metrics={"kept_connection": 0},
        taken_at=time.time(),
    )
