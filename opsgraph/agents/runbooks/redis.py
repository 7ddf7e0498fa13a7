"""Redis runbooks: memory pressure, clients exhausted (or under pressure), and an unreachable server.

A full server is not a down one: clients exhausted is fixed without a restart (disconnect
the idle clients that fill it, else raise maxclients at runtime), or escalated — a
restart would drop every client and fix nothing. Only a server that does not answer at
all is restarted, and only through its environment (the same server with its own data).
"""

from __future__ import annotations

import math
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.environments.liveness import REDIS_FULL
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.redis_probe import CLIENT_PRESSURE, CLIENTS_EXHAUSTED
from opsgraph.tools.redis_tools import MIN_IDLE_FLOOR_S
from opsgraph.tools.snapshot import Snapshot

# After a scale-up, Redis should sit at this share of maxmemory: well under the default
# degraded band (85 %), leaving room for the growth that caused the incident.
TARGET_MEMORY_SHARE = 0.70
FRAGMENTED = 1.5
# After a maxclients raise, the clients connected now should fill at most this share of it.
TARGET_CLIENTS_SHARE = 0.70


def _redis_facts(read: ReadTool, resource: str) -> dict[str, Any]:
    outcome = read("redis_info", {"resource": resource, "section": "all"})
    if not outcome.ok:
        return {"error": outcome.error}
    return outcome.output or {}


def _diagnose_redis_memory(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _redis_facts(read, incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"redis_info failed: {facts['error']}"]
        return diagnosis_of(incident, evidence, "Redis is under memory pressure; details could not be read", 0.5)
    used_mb = facts["used_memory"] / 2**20
    max_mb = facts["maxmemory"] / 2**20
    fragmentation = float(facts.get("mem_fragmentation_ratio") or 1.0)
    evidence = [
        f"used_memory {used_mb:.1f} MiB of maxmemory {max_mb:.1f} MiB ({100 * used_mb / max_mb:.1f} %)",
        f"maxmemory_policy {facts['maxmemory_policy']}",
        f"{facts['oom_rejected_writes']} writes rejected with OOM, {facts['evicted_keys']} keys evicted",
        f"{facts['dbsize']} keys, fragmentation ratio {fragmentation:.2f}",
    ]
    growth = Hypothesis(
        cause="the dataset grew beyond the configured maxmemory",
        likelihood=0.85 if fragmentation < FRAGMENTED else 0.5,
        evidence_for=[evidence[0], evidence[3]],
        evidence_against=[] if fragmentation < FRAGMENTED else ["fragmentation is high"],
    )
    fragmented = Hypothesis(
        cause="allocator fragmentation inflates memory use",
        likelihood=0.4 if fragmentation >= FRAGMENTED else 0.1,
        evidence_for=[f"fragmentation ratio {fragmentation:.2f}"] if fragmentation >= FRAGMENTED else [],
        evidence_against=[] if fragmentation >= FRAGMENTED else [f"fragmentation ratio {fragmentation:.2f} is normal"],
    )
    consequence = (
        "writes fail with OOM errors" if facts["maxmemory_policy"] == "noeviction" else "keys are being evicted"
    )
    return diagnosis_of(
        incident,
        root_cause=f"Redis dataset ({used_mb:.1f} MiB) has filled its maxmemory ({max_mb:.1f} MiB); {consequence}",
        evidence=evidence,
        confidence=0.9,
        hypotheses=[growth, fragmented],
    )


def _plan_redis_memory(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _redis_facts(read, resource.name)
    if "error" in facts:
        return Plan(steps=[], summary=f"cannot plan: redis_info failed ({facts['error']})", backend=BACKEND)
    steps: list[PlanStep] = []
    fragmentation = float(facts.get("mem_fragmentation_ratio") or 1.0)
    if fragmentation >= FRAGMENTED:
        steps.append(
            PlanStep(
                tool="redis_memory_purge",
                args={"resource": resource.name},
                rationale=f"fragmentation ratio {fragmentation:.2f} means memory can be returned without losing data",
                expected_effect="lower RSS; dataset unchanged",
            )
        )
    used_mb = facts["used_memory"] / 2**20
    current_mb = facts["maxmemory"] / 2**20
    wanted_mb = max(math.ceil(used_mb / TARGET_MEMORY_SHARE / 16) * 16, math.ceil(current_mb) + 16)
    if wanted_mb > resource.policy.max_memory_mb:
        return Plan(
            steps=steps,
            summary=(
                f"needs maxmemory {wanted_mb} MiB, above the policy ceiling of {resource.policy.max_memory_mb} MiB: "
                "a human must choose between more memory and dropping data"
            ),
            backend=BACKEND,
        )
    steps.append(
        PlanStep(
            tool="redis_scale_memory",
            args={"resource": resource.name, "maxmemory_mb": wanted_mb},
            rationale=f"{used_mb:.1f} MiB in use; {wanted_mb} MiB puts it near {TARGET_MEMORY_SHARE:.0%} of maxmemory",
            expected_effect=f"memory use falls to about {100 * used_mb / wanted_mb:.0f} % of maxmemory; no more OOM",
            undo=f"a human sets maxmemory back to {math.ceil(current_mb)} MiB (CONFIG SET) once usage is below it",
        )
    )
    return Plan(steps=steps, summary=f"raise maxmemory of {resource.name} to {wanted_mb} MiB", backend=BACKEND)


# ---- clients exhausted (or under pressure)


def _clients_facts(read: ReadTool, resource: str) -> dict[str, Any]:
    outcome = read("redis_clients", {"resource": resource})
    if not outcome.ok:
        return {"error": outcome.error}
    return outcome.output or {}


def _unmeasured(facts: dict[str, Any]) -> bool:
    """The server refused us a connection because it is full: OpsGraph has no way in."""
    return REDIS_FULL in str(facts.get("error", ""))


def _holder_text(holders: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{h['clients']} from {h['name']}@{h['host'] or '?'} (idle {h['idle_min_s']}-{h['idle_max_s']} s)"
        for h in holders[:3]
    )


def _diagnose_clients(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _clients_facts(read, incident.resource)
    if _unmeasured(facts):
        cause = (
            f"{incident.resource} is at maxclients and refuses new connections; OpsGraph holds no connection "
            "to it, so who holds the clients cannot be measured"
        )
        return diagnosis_of(incident, [*snapshot.reasons, f"redis_clients failed: {facts['error']}"], cause, 0.6)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"redis_clients failed: {facts['error']}"]
        return diagnosis_of(incident, evidence, "Redis clients fill maxclients; who holds them could not be read", 0.5)
    connected, maxclients = facts["connected"], facts["maxclients"]
    idle = facts["idle_killable"]
    evidence = [
        f"{connected} clients of maxclients {maxclients}",
        f"held by: {_holder_text(facts['holders'])}",
        f"{idle['count']} clients idle >= {MIN_IDLE_FLOOR_S} s and not protected"
        + (f" ({_holder_text(idle['holders'])})" if idle["count"] else ""),
        f"protected (never disconnected): {facts['protected'] or 'none'}",
    ]
    leak = Hypothesis(
        cause="idle (leaked) connections hold the client slots",
        likelihood=min(0.9, 0.3 + idle["count"] / max(connected, 1)),
        evidence_for=[evidence[2]] if idle["count"] else [],
        evidence_against=[] if idle["count"] else [f"no client is idle >= {MIN_IDLE_FLOOR_S} s"],
    )
    load = Hypothesis(
        cause="real load: more active clients than maxclients allows",
        likelihood=0.2 if idle["count"] else 0.8,
        evidence_for=[] if idle["count"] else [evidence[0], evidence[2]],
        evidence_against=[evidence[2]] if idle["count"] else [],
    )
    if idle["count"]:
        top = idle["holders"][0]
        cause = (
            f"{idle['count']} idle clients (idle {idle['min_idle_s']}-{idle['max_idle_s']} s, most from "
            f"{top['name']}@{top['host'] or '?'}) hold slots of maxclients {maxclients}: a connection leak"
        )
    else:
        cause = f"{connected} active clients fill maxclients {maxclients}: load, not idle connections"
    return diagnosis_of(incident, evidence, cause, confidence=0.85, hypotheses=[leak, load])


def _scale_clients_step(resource: Resource, connected: int, current: int) -> PlanStep | str:
    """Raise maxclients so `connected` sits near TARGET_CLIENTS_SHARE; or why that is not allowed."""
    wanted = max(math.ceil(connected / TARGET_CLIENTS_SHARE / 16) * 16, current + 16)
    ceiling = resource.policy.max_connections
    if wanted > ceiling:
        return f"raising maxclients to {wanted} would pass the policy ceiling of {ceiling} connections"
    return PlanStep(
        tool="redis_scale_clients",
        args={"resource": resource.name, "maxclients": wanted},
        rationale=f"{connected} clients need room; maxclients {wanted} puts them near {TARGET_CLIENTS_SHARE:.0%}",
        expected_effect=f"new connections are accepted again; clients use about {100 * connected / wanted:.0f} %",
        undo=f"redis_scale_clients back to {current}",
    )


def _plan_clients(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _clients_facts(read, resource.name)
    if _unmeasured(facts):
        summary = (
            f"escalate: {resource.name} is at maxclients and refuses new connections, and OpsGraph holds no "
            "connection to it, so it can neither see nor disconnect the clients that fill it. It is up: do not "
            "restart it (that drops every client and fixes nothing). Free connections in the applications that "
            "hold them, or raise maxclients (CONFIG SET maxclients) from a connection that is already open"
        )
        return Plan(steps=[], summary=summary, backend=BACKEND)
    if "error" in facts:
        return Plan(steps=[], summary=f"cannot plan: redis_clients failed ({facts['error']})", backend=BACKEND)
    connected, maxclients = int(facts["connected"]), int(facts["maxclients"])
    idle = facts["idle_killable"]
    steps: list[PlanStep] = []
    if idle["count"]:
        # The youngest idle client's idle time: every idle client is covered, every client
        # that ran a command since (or in the last MIN_IDLE_FLOOR_S) is spared.
        steps.append(
            PlanStep(
                tool="redis_kill_idle_clients",
                args={"resource": resource.name, "min_idle_s": int(idle["min_idle_s"]), "max_clients": idle["count"]},
                rationale=(
                    f"{idle['count']} clients idle {idle['min_idle_s']}-{idle['max_idle_s']} s hold the slots "
                    f"({_holder_text(idle['holders'])}); active clients, replicas, subscribers and OpsGraph's "
                    "own connection are spared; no restart"
                ),
                expected_effect=f"clients fall from {connected} to about {connected - idle['count']} of {maxclients}",
            )
        )
    remaining = connected - int(idle["count"])
    if 100 * remaining / maxclients < resource.thresholds.clients_used_pct.degraded:
        summary = f"disconnect {idle['count']} idle clients of {resource.name} (no restart)"
        return Plan(steps=steps, summary=summary, backend=BACKEND)
    scale = _scale_clients_step(resource, remaining, maxclients)
    if isinstance(scale, str):
        freed = f"disconnecting {idle['count']} idle clients is not enough and " if steps else ""
        return Plan(steps=steps, summary=f"escalate: {freed}{scale}; a human must decide", backend=BACKEND)
    steps.append(scale)
    summary = f"raise maxclients of {resource.name} to {scale.args['maxclients']} at runtime (no restart)"
    if len(steps) > 1:
        summary = f"disconnect {idle['count']} idle clients, then {summary}"
    return Plan(steps=steps, summary=summary, backend=BACKEND)


# ---- unreachable


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    cause = f"{incident.resource} does not answer: the server is down or hung"
    return diagnosis_of(incident, snapshot.reasons, cause, confidence=0.7)


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    step = PlanStep(
        tool="redis_restart",
        args={"resource": resource.name},
        rationale=(
            "the server does not answer; its environment restarts the same server with its own config, which "
            "reloads the data it persisted (AOF/RDB) — writes it had not persisted cannot come back. A server "
            "OpsGraph may not restart is refused, never replaced"
        ),
        expected_effect="redis answers PING again with its data",
    )
    return Plan(steps=[step], summary=f"restart {resource.name} through its environment", backend=BACKEND)


_CLIENTS = Runbook(diagnose=_diagnose_clients, plan=_plan_clients)
RUNBOOKS = {
    "redis_memory_pressure": Runbook(diagnose=_diagnose_redis_memory, plan=_plan_redis_memory),
    CLIENTS_EXHAUSTED: _CLIENTS,
    CLIENT_PRESSURE: _CLIENTS,
    "redis_unreachable": Runbook(diagnose=_diagnose_unreachable, plan=_plan_restart),
}
