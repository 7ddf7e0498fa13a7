"""Container probe: is it running, was it OOM-killed, how close is its memory to the limit.

A stopped container is FAILED (`container_oom` when the kernel's OOM killer ended it,
else `container_down`); a running one is graded on memory use against its limit
(`container_memory_pressure`). One inspect, plus, for a running container with a
memory limit, one one-shot stats sample (up to a second: the engine publishes stats
once a second).
"""

from __future__ import annotations

import time
from typing import Any

from opsgraph.tools.docker_tools import read_container
from opsgraph.tools.environments.docker import ContainerMissing, DockerError, docker_client, get_container
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of
from opsgraph.tools.snapshot import Health, Snapshot

PROBE_TIMEOUT_S = 5.0


def _failed(resource: Resource, symptom: str, reason: str) -> Snapshot:
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=Health.FAILED,
        symptom=symptom,
        reasons=[reason],
        taken_at=time.time(),
    )


def _life_finding(facts: dict[str, Any]) -> Finding:
    """Whether the process is alive, and if not, whether memory killed it."""
    name, state = facts["container"], facts["state"]
    ended = f"state {state}, exit code {facts['exit_code']}"
    if facts["running"]:
        if facts["oom_killed"] and facts["restart_count"] > 0:
            # docker keeps OOMKilled from the last exit; with restarts by the engine's
            # restart policy (a manual restart resets the count) it is a fault that recurs.
            return Finding(
                Health.DEGRADED,
                "container_oom",
                f"container {name} runs again after an OOM kill: restarted {facts['restart_count']} times "
                "by its restart policy",
            )
        return Finding(Health.HEALTHY, "container_down", f"container {name} is running")
    if facts["oom_killed"]:
        limit = facts["memory_limit_mb"]
        return Finding(
            Health.FAILED,
            "container_oom",
            f"container {name} was killed by the kernel OOM killer "
            f"(memory limit {f'{limit:g} MiB' if limit else 'none: the host ran out'}); {ended}",
        )
    return Finding(Health.FAILED, "container_down", f"container {name} is not running: {ended}")


def _memory_finding(resource: Resource, facts: dict[str, Any]) -> Finding:
    pct = facts["memory_used_pct"]
    if pct is None:  # not running, or no memory limit to press against
        return Finding(Health.HEALTHY, "container_memory_pressure", "no memory limit in force")
    band = resource.thresholds.memory_used_pct
    health = grade(pct, band)
    limit = band.degraded if health is Health.DEGRADED else band.failed
    return Finding(
        health,
        "container_memory_pressure",
        f"memory {facts['memory_usage_mb']:.1f} MiB of limit {facts['memory_limit_mb']:g} MiB "
        f"({pct:.1f} %; {health} at >= {limit:g} %)",
    )


def probe_container(resource: Resource) -> Snapshot:
    try:
        with docker_client(PROBE_TIMEOUT_S) as client:
            container = get_container(client, resource)
            facts = read_container(container, memory=bool(container.attrs["HostConfig"].get("Memory")))
    except ContainerMissing as error:
        return _failed(resource, "container_missing", str(error))
    except DockerError as error:
        return _failed(resource, "container_unreachable", str(error))
    return snapshot_of(
        resource,
        [_life_finding(facts), _memory_finding(resource, facts)],
        {
            "state": facts["state"],
            "exit_code": facts["exit_code"],
            "oom_killed": int(facts["oom_killed"]),
            "restart_count": facts["restart_count"],
            "memory_usage_mb": facts["memory_usage_mb"],
            "memory_limit_mb": facts["memory_limit_mb"],
            "memory_used_pct": facts["memory_used_pct"],
        },
    )
