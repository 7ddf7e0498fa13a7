"""GCP runbooks: Memorystore memory pressure, Compute Engine memory pressure, CPU saturation and a stopped VM.

Managed resources are fixed through their APIs, and each fix keeps the data where it is:

- Memorystore under memory pressure gets more memory (`gcp_redis_scale_memory`), sized
  so usage lands near 70 %, within the policy's memory ceiling. Never on a Basic Tier
  instance: Google flushes a Basic instance's data when it is scaled, so that is a human's
  call (as is anything above the ceiling).
- A Compute Engine VM whose guest memory fills up (a leak, on a VM OpsGraph cannot look
  inside) is reset (`gcp_compute_restart_instance`): the same instance and its persistent
  disks come back; what was in memory is gone, which is why it needs an approval.
- A VM saturated on CPU is reported: the fix that helps (a bigger machine type) stops the
  VM, so a human decides.
- A stopped (TERMINATED) VM is started again (`gcp_compute_start_instance`), asking
  first: someone may have stopped it on purpose.
- A Memorystore or Cloud SQL instance that is not READY / RUNNABLE is usually Google's
  own maintenance or an operation in flight: escalated with what the API says.

Cloud SQL connection overload is the PostgreSQL runbook's (`runbooks.postgres`).
"""

from __future__ import annotations

import math
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.inventory import Resource
from opsgraph.tools.snapshot import Snapshot

# After a scale-up, Memorystore should sit at this share of its memory (as for a local Redis).
TARGET_MEMORY_SHARE = 0.70
_BASIC = "BASIC"


def _read(read: ReadTool, tool: str, resource: str) -> dict[str, Any]:
    outcome = read(tool, {"resource": resource})
    if not outcome.ok:
        return {"error": f"{tool} failed: {outcome.error}"}
    return outcome.output or {}


def _escalate(summary: str) -> Plan:
    return Plan(steps=[], summary=f"{summary}: escalate to a human", backend=BACKEND)


# ---- Memorystore memory pressure


def _memory_share(facts: dict[str, Any]) -> float:
    maxmemory = float(facts.get("maxmemory") or 0)
    return float(facts.get("used_memory") or 0) / maxmemory if maxmemory else 0.0


def _diagnose_redis_memory(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _read(read, "gcp_redis_info", incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, facts["error"]]
        return diagnosis_of(incident, evidence, "Memorystore is under memory pressure; details could not be read", 0.5)
    instance = facts["instance"]
    share = _memory_share(facts)
    evidence = [
        f"{instance['tier']} instance of {instance['memory_size_gb']} GB, {100 * share:.1f} % of its memory in use",
        f"maxmemory_policy {facts.get('maxmemory_policy')}",
        f"{facts.get('oom_rejected_writes', 0)} writes rejected with OOM, {facts.get('evicted_keys', 0)} keys evicted",
        f"{facts.get('dbsize')} keys",
    ]
    growth = Hypothesis(
        cause="the dataset grew beyond the instance's memory size",
        likelihood=0.85,
        evidence_for=[evidence[0], evidence[3]],
    )
    consequence = (
        "writes fail with OOM errors" if facts.get("maxmemory_policy") == "noeviction" else "keys are being evicted"
    )
    return diagnosis_of(
        incident,
        root_cause=f"the Memorystore dataset has filled the instance's {instance['memory_size_gb']} GB; {consequence}",
        evidence=evidence,
        confidence=0.9,
        hypotheses=[growth],
    )


def _plan_redis_memory(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _read(read, "gcp_redis_info", resource.name)
    if "error" in facts:
        return _escalate(f"cannot plan: {facts['error']}")
    instance = facts["instance"]
    current_gb = int(instance["memory_size_gb"])
    if instance["tier"] == _BASIC:
        return _escalate(
            f"{resource.name} is a Basic Tier instance: Google flushes its data when it is scaled, so more memory "
            "would cost every key; a human chooses (move to Standard Tier, or accept the flush)"
        )
    wanted_gb = max(math.ceil(current_gb * _memory_share(facts) / TARGET_MEMORY_SHARE), current_gb + 1)
    ceiling_gb = resource.policy.max_memory_mb // 1024
    if wanted_gb > ceiling_gb:
        return _escalate(
            f"needs {wanted_gb} GB, above the policy ceiling of {resource.policy.max_memory_mb} MiB: a human must "
            "choose between more memory and dropping data"
        )
    step = PlanStep(
        tool="gcp_redis_scale_memory",
        args={"resource": resource.name, "memory_size_gb": wanted_gb},
        rationale=(
            f"{100 * _memory_share(facts):.0f} % of {current_gb} GB in use; {wanted_gb} GB puts it near "
            f"{TARGET_MEMORY_SHARE:.0%} (a Standard Tier instance keeps its data while it scales)"
        ),
        expected_effect=f"memory use falls to about {100 * _memory_share(facts) * current_gb / wanted_gb:.0f} %",
        undo=f"gcp_redis_scale_memory back to {current_gb} GB once usage is below it",
    )
    return Plan(steps=[step], summary=f"scale {resource.name} to {wanted_gb} GB", backend=BACKEND)


# ---- Compute Engine


def _vm_evidence(facts: dict[str, Any]) -> list[str]:
    return [
        f"status {facts.get('status')}, machine type {facts.get('machine_type')}",
        f"guest memory {facts.get('memory_used_pct')} % used, CPU {facts.get('cpu_used_pct')} %",
        f"running since {facts.get('last_start_timestamp')}",
    ]


def _diagnose_compute(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _read(read, "gcp_compute_describe", incident.resource)
    if "error" in facts:
        return diagnosis_of(incident, [*snapshot.reasons, facts["error"]], "the VM is unhealthy; details unread", 0.5)
    evidence = _vm_evidence(facts)
    causes = {
        "gcp_compute_memory_pressure": (
            "the guest's memory filled up (a leak in what runs on the VM): it will swap or be OOM-killed",
            Hypothesis(cause="a process on the VM leaks memory", likelihood=0.8, evidence_for=evidence[1:2]),
        ),
        "gcp_compute_cpu_saturation": (
            "the VM's CPU is saturated: the machine type is too small for its load, or a process spins",
            Hypothesis(cause="load beyond the machine type", likelihood=0.6, evidence_for=evidence[1:2]),
        ),
        "gcp_compute_down": (
            f"the VM is not running (status {facts.get('status')}): it was stopped or preempted",
            Hypothesis(cause="stopped by someone or preempted by GCP", likelihood=0.7, evidence_for=evidence[:1]),
        ),
    }
    root_cause, hypothesis = causes.get(incident.symptom, (f"{incident.symptom} on the VM", None))
    return diagnosis_of(incident, evidence, root_cause, 0.85, [hypothesis] if hypothesis else [])


def _vm_in(status: str, read: ReadTool, resource: Resource, otherwise: str) -> dict[str, Any] | Plan:
    """The VM's facts when it is in `status`, else the escalation that says why nothing is planned."""
    facts = _read(read, "gcp_compute_describe", resource.name)
    if "error" in facts:
        return _escalate(f"cannot plan: {facts['error']}")
    if facts.get("status") != status:
        return _escalate(f"{resource.name} is {facts.get('status')}, not {status}: {otherwise}")
    return facts


def _plan_compute_memory(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _vm_in("RUNNING", read, resource, "a reset would not help")
    if isinstance(facts, Plan):
        return facts
    step = PlanStep(
        tool="gcp_compute_restart_instance",
        args={"resource": resource.name},
        rationale=(
            f"guest memory at {facts.get('memory_used_pct')} % with no way to free it from outside the VM; a reset "
            "restarts the same instance with its persistent disks"
        ),
        expected_effect="guest memory back to its baseline after boot; what was only in memory is lost",
    )
    return Plan(steps=[step], summary=f"reset {resource.name} (same instance, same disks)", backend=BACKEND)


def _plan_compute_cpu(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _escalate(
        f"{resource.name} is CPU-saturated; a bigger machine type (gcp_compute_resize) stops the VM, and a reset "
        "would only pause the load"
    )


def _plan_compute_start(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    stopped = _vm_in("TERMINATED", read, resource, "wait for the operation in flight, or look")
    if isinstance(stopped, Plan):
        return stopped
    step = PlanStep(
        tool="gcp_compute_start_instance",
        args={"resource": resource.name},
        rationale="the VM is TERMINATED; starting it brings back the same instance with its disks",
        expected_effect="status RUNNING; the service on it comes back after boot",
        undo="gcp_compute_stop_instance, if it had been stopped on purpose",
    )
    return Plan(steps=[step], summary=f"start {resource.name}", backend=BACKEND)


# ---- a managed instance that is not serving


def _diagnose_not_serving(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    return diagnosis_of(
        incident,
        snapshot.reasons,
        "the managed instance is not serving (maintenance, an operation in flight, or a GCP-side failure)",
        0.6,
    )


def _plan_not_serving(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _escalate(f"{resource.name} is not serving and GCP operates it; look at its operations and status")


RUNBOOKS = {
    "gcp_redis_memory_pressure": Runbook(diagnose=_diagnose_redis_memory, plan=_plan_redis_memory),
    "gcp_compute_memory_pressure": Runbook(diagnose=_diagnose_compute, plan=_plan_compute_memory),
    "gcp_compute_cpu_saturation": Runbook(diagnose=_diagnose_compute, plan=_plan_compute_cpu),
    "gcp_compute_down": Runbook(diagnose=_diagnose_compute, plan=_plan_compute_start),
    "gcp_redis_down": Runbook(diagnose=_diagnose_not_serving, plan=_plan_not_serving),
    "gcp_sql_down": Runbook(diagnose=_diagnose_not_serving, plan=_plan_not_serving),
}
