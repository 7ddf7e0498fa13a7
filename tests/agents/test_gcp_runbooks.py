"""The GCP runbooks' plans from what the read tools report: each fix where it is safe, an escalation where not."""

from __future__ import annotations

from typing import Any

import pytest
from llm_fixtures import FakeRead

from opsgraph.agents.records import Incident
from opsgraph.agents.runbooks import RUNBOOKS
from opsgraph.tools.inventory import Resource, parse_inventory
from opsgraph.tools.snapshot import Health

GCP = {"project": "my-project"}
INVENTORY = parse_inventory(
    {
        "resources": [
            {"name": "web-1", "kind": "gcp_compute", "environment": "gcp", "gcp": {**GCP, "zone": "us-central1-a"}},
            {"name": "cache", "kind": "gcp_redis", "environment": "gcp", "gcp": {**GCP, "region": "us-central1"},
             "policy": {"max_memory_mb": 2048}},
        ]
    }
)  # fmt: skip


def _plan(symptom: str, resource: Resource, outputs: dict[str, dict[str, Any]]) -> tuple[list[Any], str]:
    incident = Incident(
        incident_id="inc", resource=resource.name, kind=resource.kind, symptom=symptom,
        fingerprint=f"{resource.name}:{symptom}", severity=Health.FAILED, fault_started_at=1.0, detected_at=2.0,
    )  # fmt: skip
    plan = RUNBOOKS[symptom].plan(incident, resource, FakeRead(outputs))
    return [(step.tool, step.args) for step in plan.steps], plan.summary


def _vm(status: str) -> dict[str, dict[str, Any]]:
    return {"gcp_compute_describe": {"status": status, "machine_type": "e2-medium", "memory_used_pct": 97.0}}


def _memorystore(tier: str, size_gb: int = 1, used: float = 0.97) -> dict[str, dict[str, Any]]:
    maxmemory = 32 * 2**20
    instance = {"tier": tier, "memory_size_gb": size_gb}
    return {"gcp_redis_info": {"instance": instance, "used_memory": used * maxmemory, "maxmemory": maxmemory}}


@pytest.mark.parametrize(
    ("symptom", "status", "tool"),
    [("gcp_compute_memory_pressure", "RUNNING", "gcp_compute_restart_instance"),
     ("gcp_compute_down", "TERMINATED", "gcp_compute_start_instance")],
)  # fmt: skip
def test_a_vm_in_the_state_its_fix_needs_gets_that_fix(symptom: str, status: str, tool: str) -> None:
    assert _plan(symptom, INVENTORY.get("web-1"), _vm(status))[0] == [(tool, {"resource": "web-1"})]


@pytest.mark.parametrize(
    ("symptom", "status"), [("gcp_compute_memory_pressure", "STOPPING"), ("gcp_compute_down", "STAGING")]
)
def test_a_vm_in_another_state_is_escalated_with_its_status(symptom: str, status: str) -> None:
    steps, summary = _plan(symptom, INVENTORY.get("web-1"), _vm(status))
    assert steps == [] and status in summary and "escalate" in summary


def test_cpu_saturation_is_left_to_a_human_whatever_the_state() -> None:
    steps, summary = _plan("gcp_compute_cpu_saturation", INVENTORY.get("web-1"), _vm("RUNNING"))
    assert steps == [] and "gcp_compute_resize" in summary


def test_memorystore_under_pressure_is_scaled_toward_70_percent() -> None:
    steps, _ = _plan("gcp_redis_memory_pressure", INVENTORY.get("cache"), _memorystore("STANDARD_HA"))
    assert steps == [("gcp_redis_scale_memory", {"resource": "cache", "memory_size_gb": 2})]


@pytest.mark.parametrize(
    ("outputs", "why"),
    [(_memorystore("BASIC"), "flushes its data"), (_memorystore("STANDARD_HA", size_gb=2), "above the policy ceiling")],
)
def test_a_basic_instance_or_a_size_above_the_ceiling_is_escalated(outputs: dict[str, Any], why: str) -> None:
    steps, summary = _plan("gcp_redis_memory_pressure", INVENTORY.get("cache"), outputs)
    assert steps == [] and why in summary
