"""Redis runbooks: memory pressure (scale maxmemory, purge fragmentation) and an unreachable server."""

from __future__ import annotations

import math
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.graph.schemas import Diagnosis, Hypothesis, Incident, Plan, PlanStep, Snapshot
from opsgraph.tools.inventory import Resource

# After a scale-up, Redis should sit at this share of maxmemory: well under the default
# degraded band (85 %), leaving room for the growth that caused the incident.
TARGET_MEMORY_SHARE = 0.70
FRAGMENTED = 1.5


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
            undo=f"redis_scale_memory back to {math.ceil(current_mb)} MiB",
        )
    )
    return Plan(steps=steps, summary=f"raise maxmemory of {resource.name} to {wanted_mb} MiB", backend=BACKEND)


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    cause = f"{incident.resource} does not answer: the server is down or hung"
    return diagnosis_of(incident, snapshot.reasons, cause, confidence=0.7)


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    step = PlanStep(
        tool="redis_restart",
        args={"resource": resource.name},
        rationale="the server does not answer; a restart brings it back (unsaved data is lost)",
        expected_effect="redis answers PING again",
    )
    return Plan(steps=[step], summary=f"restart {resource.name}", backend=BACKEND)


RUNBOOKS = {
    "redis_memory_pressure": Runbook(diagnose=_diagnose_redis_memory, plan=_plan_redis_memory),
    "redis_unreachable": Runbook(diagnose=_diagnose_unreachable, plan=_plan_restart),
}
