"""HTTP app runbooks: an app that does not answer (restart its process) and one slowed by its own CPU
(restart ends the runaway work); a slow app whose process is idle is not restarted — the cause is
elsewhere (a dependency), and a restart would only drop the requests in flight.

Evidence comes from `process_stats` through the read-only door. Only an app OpsGraph runs
(`environment: local`) is restarted: anyone else's app belongs to its own service manager.
"""

from __future__ import annotations

import time
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.inventory import Environment, Resource
from opsgraph.tools.snapshot import Snapshot

CPU_SAMPLE_S = 0.5  # two process_stats reads this far apart give the process's CPU use now
SATURATED_CORES = 0.8  # a Python app at this many cores of CPU is saturated (one interpreter: one core)


def _stats(read: ReadTool, resource: str) -> dict[str, Any]:
    outcome = read("process_stats", {"resource": resource})
    return (outcome.output or {}) if outcome.ok else {"error": outcome.error}


def _cpu_seconds(facts: dict[str, Any]) -> float:
    return float(facts["cpu_seconds"]) + sum(float(child["cpu_seconds"]) for child in facts.get("children", []))


def _cpu_cores(read: ReadTool, resource: str) -> tuple[float | None, str]:
    """CPU in use now (cores), from two reads of the process and its children; None with why when unreadable."""
    first = _stats(read, resource)
    started = time.monotonic()
    time.sleep(CPU_SAMPLE_S)
    second = _stats(read, resource)
    if "error" in first or "error" in second:
        return None, f"process_stats failed: {first.get('error') or second.get('error')}"
    cores = (_cpu_seconds(second) - _cpu_seconds(first)) / (time.monotonic() - started)
    return cores, f"the app's processes use {cores:.2f} CPU cores (over {CPU_SAMPLE_S:g} s)"


def _restart(resource: Resource, why: str) -> Plan:
    if resource.environment is not Environment.LOCAL:
        return Plan(
            steps=[],
            summary=f"{resource.name} is not run by OpsGraph: its own service manager must restart it ({why})",
            backend=BACKEND,
        )
    step = PlanStep(
        tool="process_restart",
        args={"resource": resource.name},
        rationale=why,
        expected_effect="the app answers again within its latency thresholds; it keeps no state of its own",
    )
    return Plan(steps=[step], summary=f"restart the app process of {resource.name}", backend=BACKEND)


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _stats(read, incident.resource)
    if "error" in facts:
        cause = f"the app's process is down: {facts['error']}"
        down = Hypothesis(cause="the app's process exited or was killed", likelihood=0.85, evidence_for=[cause])
        return diagnosis_of(incident, [*snapshot.reasons, cause], cause, 0.85, [down])
    alive = f"the app's process runs (pid {facts['pid']}, state {facts['state']}) but does not answer"
    hung = Hypothesis(cause="the process is hung or not listening", likelihood=0.6, evidence_for=[alive])
    return diagnosis_of(incident, [*snapshot.reasons, alive], alive, 0.6, [hung])


def _plan_unreachable(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _restart(resource, "the app does not answer: a restart brings up the same code with its inventory settings")


def _diagnose_latency(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    cores, measured = _cpu_cores(read, incident.resource)
    evidence = [*snapshot.reasons, measured]
    if cores is not None and cores >= SATURATED_CORES:
        cause = f"runaway work saturates the app's CPU ({cores:.2f} cores): requests queue behind it"
        busy = Hypothesis(cause="CPU saturation inside the app's process", likelihood=0.8, evidence_for=[measured])
        slow_dep = Hypothesis(cause="a slow dependency", likelihood=0.1, evidence_against=[measured])
        return diagnosis_of(incident, evidence, cause, 0.8, [busy, slow_dep])
    cause = "the app is slow while its process is not busy: the cause is outside it (a dependency, the network)"
    return diagnosis_of(incident, evidence, cause, 0.4)


def _plan_latency(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    cores, measured = _cpu_cores(read, resource.name)
    if cores is None or cores < SATURATED_CORES:
        return Plan(steps=[], summary=f"not the app's own CPU ({measured}): a human must look further", backend=BACKEND)
    return _restart(resource, f"{measured}: a restart ends the runaway work (the app keeps no state)")


RUNBOOKS = {
    "http_unreachable": Runbook(_diagnose_unreachable, _plan_unreachable),
    "http_latency": Runbook(_diagnose_latency, _plan_latency),
}
