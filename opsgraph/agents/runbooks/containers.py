"""Container runbooks: a stopped container (restart), an OOM-killed one (more memory, then
restart) and one close to its memory limit (more memory, in place).

Evidence comes from `docker_stats` and `docker_logs` through the read-only door; the
plans stay inside the resource's `policy.max_memory_mb` and say so when they cannot.
"""

from __future__ import annotations

import math
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.inventory import Resource
from opsgraph.tools.snapshot import Snapshot

LOG_LINES = 20
LOG_LINES_IN_EVIDENCE = 5
# After raising a limit for pressure, the container should sit at this share of it: well under
# the default degraded band (85 %), leaving room for the growth that caused the incident.
TARGET_MEMORY_SHARE = 0.70
OOM_GROWTH = 2  # an OOM kill says the working set did not fit: double the limit

# What an exit code says about how the main process ended (128 + n = killed by signal n).
_EXIT_MEANINGS = {
    0: "its main process ended by itself (exit 0)",
    1: "its main process failed (exit 1)",
    137: "its main process was killed with SIGKILL (exit 137)",
    139: "its main process crashed with a segmentation fault (exit 139)",
    143: "its main process was stopped with SIGTERM (exit 143)",
}


def _read(read: ReadTool, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    outcome = read(tool, args)
    if not outcome.ok:
        return {"error": outcome.error}
    return outcome.output or {}


def _evidence(read: ReadTool, resource: str) -> tuple[dict[str, Any], list[str]]:
    """docker_stats facts, and the last log lines as evidence."""
    facts = _read(read, "docker_stats", {"resource": resource})
    logs = _read(read, "docker_logs", {"resource": resource, "lines": LOG_LINES})
    if "error" in logs:
        return facts, [f"docker_logs failed: {logs['error']}"]
    tail = [line for line in logs.get("lines", []) if line.strip()][-LOG_LINES_IN_EVIDENCE:]
    return facts, [f"log: {line}" for line in tail] or ["the container wrote no log lines"]


def _state_line(facts: dict[str, Any]) -> str:
    limit = facts["memory_limit_mb"]
    return (
        f"state {facts['state']}, exit code {facts['exit_code']}, OOM-killed {facts['oom_killed']}, "
        f"{facts['restart_count']} restarts by policy, memory limit {f'{limit:g} MiB' if limit else 'none'}"
    )


def _diagnose_down(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts, log_evidence = _evidence(read, incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"docker_stats failed: {facts['error']}"]
        return diagnosis_of(incident, evidence, f"{incident.resource} is not running; details could not be read", 0.5)
    code = int(facts["exit_code"])
    meaning = _EXIT_MEANINGS.get(code, f"its main process failed (exit {code})")
    crashed = code not in (0, 143)
    engine_error = [f"engine error: {facts['engine_error']}"] if facts.get("engine_error") else []
    evidence = [_state_line(facts), *engine_error, *log_evidence]
    hypotheses = [
        Hypothesis(
            cause="the main process crashed or was killed",
            likelihood=0.8 if crashed else 0.2,
            evidence_for=[f"exit code {code}"] if crashed else [],
            evidence_against=[] if crashed else [f"exit code {code} is a clean end"],
        ),
        Hypothesis(
            cause="someone or something stopped it on purpose",
            likelihood=0.2 if crashed else 0.7,
            evidence_for=[] if crashed else [f"exit code {code}"],
        ),
    ]
    return diagnosis_of(
        incident,
        root_cause=f"container {facts['container']} is not running ({facts['state']}): {meaning}; not an OOM kill",
        evidence=evidence,
        confidence=0.8,
        hypotheses=hypotheses,
    )


def _restart_step(resource: Resource, why: str) -> PlanStep:
    return PlanStep(
        tool="docker_restart",
        args={"resource": resource.name},
        rationale=why,
        expected_effect="the container runs again (in-memory state starts empty)",
    )


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    step = _restart_step(resource, "the container is not running; starting it again restores the service")
    return Plan(steps=[step], summary=f"restart container of {resource.name}", backend=BACKEND)


def _diagnose_oom(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts, log_evidence = _evidence(read, incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"docker_stats failed: {facts['error']}"]
        return diagnosis_of(incident, evidence, f"{incident.resource} was OOM-killed; details could not be read", 0.6)
    limit = facts["memory_limit_mb"]
    where = f"its memory limit of {limit:g} MiB" if limit else "the host's memory (it has no limit)"
    return Diagnosis(
        root_cause=(
            f"container {facts['container']} needed more than {where}: the kernel OOM killer ended its main process "
            f"(exit code {facts['exit_code']})"
        ),
        symptom=incident.symptom,
        evidence=[_state_line(facts), *log_evidence],
        hypotheses=[
            Hypothesis(
                cause="the workload's working set outgrew the container's memory limit",
                likelihood=0.8 if limit else 0.3,
                evidence_for=["OOMKilled is set", f"memory limit {limit:g} MiB"] if limit else ["OOMKilled is set"],
            ),
            Hypothesis(cause="a memory leak in the workload", likelihood=0.3, evidence_for=["OOMKilled is set"]),
        ],
        confidence=0.85,
        severity=incident.severity,
        backend=BACKEND,
    )


def _raise_memory_step(resource: Resource, current_mb: float, new_mb: int, why: str, effect: str) -> PlanStep:
    return PlanStep(
        tool="docker_update",
        args={"resource": resource.name, "memory_mb": new_mb},
        rationale=why,
        expected_effect=effect,
        undo=f"docker_update back to memory_mb {math.ceil(current_mb)}",
    )


def _above_ceiling(resource: Resource, wanted_mb: int) -> Plan:
    return Plan(
        steps=[],
        summary=(
            f"needs a memory limit of {wanted_mb} MiB or more, not above the policy ceiling of "
            f"{resource.policy.max_memory_mb} MiB: a human must choose between more memory and a smaller workload"
        ),
        backend=BACKEND,
    )


def _plan_oom(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _read(read, "docker_stats", {"resource": resource.name})
    if "error" in facts:
        return Plan(steps=[], summary=f"cannot plan: docker_stats failed ({facts['error']})", backend=BACKEND)
    limit = facts["memory_limit_mb"]
    if not limit:
        return Plan(
            steps=[],
            summary="the container has no memory limit, so the host itself ran out: a human must look",
            backend=BACKEND,
        )
    ceiling = resource.policy.max_memory_mb
    new_mb = min(math.ceil(limit * OOM_GROWTH), ceiling)
    if new_mb <= limit:
        return _above_ceiling(resource, math.floor(limit) + 1)
    raise_step = _raise_memory_step(
        resource,
        limit,
        new_mb,
        f"OOM-killed at a {limit:g} MiB limit; {new_mb} MiB ({'x2' if new_mb < ceiling else 'the policy ceiling'}) "
        "gives the working set room",
        f"memory limit {new_mb} MiB; the next start does not run into the OOM killer",
    )
    restart = _restart_step(resource, "an OOM-killed container stays down until it is started again")
    return Plan(
        steps=[raise_step, restart],
        summary=f"raise the memory limit of {resource.name} to {new_mb} MiB, then restart it",
        backend=BACKEND,
    )


def _diagnose_pressure(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts, log_evidence = _evidence(read, incident.resource)
    if "error" in facts or facts.get("memory_used_pct") is None:
        return diagnosis_of(incident, snapshot.reasons, f"{incident.resource} is close to its memory limit", 0.6)
    return Diagnosis(
        root_cause=(
            f"container {facts['container']} uses {facts['memory_usage_mb']:.1f} MiB of its "
            f"{facts['memory_limit_mb']:g} MiB memory limit ({facts['memory_used_pct']:.1f} %): "
            "the OOM killer is near"
        ),
        symptom=incident.symptom,
        evidence=[_state_line(facts), f"CPU {facts['cpu_pct']} %", *log_evidence],
        confidence=0.8,
        severity=incident.severity,
        backend=BACKEND,
    )


def _plan_pressure(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _read(read, "docker_stats", {"resource": resource.name})
    if "error" in facts or facts.get("memory_used_pct") is None:
        why = facts.get("error") or "no memory use against a limit to read"
        return Plan(steps=[], summary=f"cannot plan: {why}", backend=BACKEND)
    used, limit = float(facts["memory_usage_mb"]), float(facts["memory_limit_mb"])
    wanted = max(math.ceil(used / TARGET_MEMORY_SHARE / 16) * 16, math.ceil(limit) + 16)
    if wanted > resource.policy.max_memory_mb:
        return _above_ceiling(resource, wanted)
    step = _raise_memory_step(
        resource,
        limit,
        wanted,
        f"{used:.1f} MiB in use; {wanted} MiB puts it near {TARGET_MEMORY_SHARE:.0%} of the limit",
        f"memory use falls to about {100 * used / wanted:.0f} % of the limit; no restart needed",
    )
    return Plan(steps=[step], summary=f"raise the memory limit of {resource.name} to {wanted} MiB", backend=BACKEND)


RUNBOOKS = {
    "container_down": Runbook(diagnose=_diagnose_down, plan=_plan_restart),
    "container_oom": Runbook(diagnose=_diagnose_oom, plan=_plan_oom),
    "container_memory_pressure": Runbook(diagnose=_diagnose_pressure, plan=_plan_pressure),
}
