"""The app runbooks on scripted process facts: restart a down app or one burning its CPU, nothing else.

The real faults (the app killed behind nginx, runaway threads in it) run in the evals:
`evals/scenarios/app-down-behind-nginx.yaml` and `app-cpu-saturation.yaml` (`make eval`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsgraph.agents.records import Incident
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.tools.inventory import Inventory
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Health, Snapshot


def _inventory(environment: str) -> Inventory:
    shop: dict[str, Any] = {"name": "shop", "kind": "http", "environment": environment}
    shop["connection"] = {"host": "127.0.0.1", "port": 18000}
    return Inventory.model_validate({"resources": [shop]})


class Process:
    """process_stats of a process using `cores` CPU cores, or an error when it is down."""

    def __init__(self, cores: float | None) -> None:
        self.cores = cores
        self.calls: list[str] = []

    def __call__(self, tool: str, args: dict[str, Any]) -> ToolOutcome:
        self.calls.append(tool)
        assert tool == "process_stats", tool  # the runbook reads, and only this
        if self.cores is None:
            return ToolOutcome(ok=False, error="shop is not running (no live pid)", duration_s=0.0)
        facts = {"pid": 42, "state": "R", "cpu_seconds": time.monotonic() * self.cores, "children": []}
        return ToolOutcome(ok=True, output=facts, duration_s=0.0)


def _incident(symptom: str) -> tuple[Incident, Snapshot]:
    incident = Incident(
        incident_id="inc-test-shop", resource="shop", kind="http", symptom=symptom,
        fingerprint=f"shop:{symptom}", severity=Health.FAILED, fault_started_at=1.0, detected_at=2.0,
    )  # fmt: skip
    snapshot = Snapshot(resource="shop", kind="http", health=Health.FAILED, symptom=symptom, taken_at=2.0)
    return incident, snapshot


@pytest.mark.parametrize(
    ("symptom", "cores", "restarts", "cause"),
    [
        ("http_unreachable", None, True, "down"),
        ("http_latency", 1.0, True, "CPU"),
        ("http_latency", 0.05, False, "outside"),
    ],
)
def test_local_app(symptom: str, cores: float | None, restarts: bool, cause: str) -> None:
    incident, snapshot = _incident(symptom)
    read = Process(cores)
    diagnosis = RunbookReasoner().diagnose(incident, snapshot, read, None)
    assert cause in diagnosis.root_cause
    plan = RunbookReasoner().plan(incident, diagnosis, _inventory("local").get("shop"), read, None)
    assert [s.tool for s in plan.steps] == (["process_restart"] if restarts else [])


def test_an_app_opsgraph_does_not_run_is_left_to_its_service_manager() -> None:
    incident, snapshot = _incident("http_unreachable")
    read = Process(None)
    diagnosis = RunbookReasoner().diagnose(incident, snapshot, read, None)
    plan = RunbookReasoner().plan(incident, diagnosis, _inventory("external").get("shop"), read, None)
    assert plan.steps == [] and "its own service manager must restart it" in plan.summary
