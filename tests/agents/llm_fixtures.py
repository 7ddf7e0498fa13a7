"""Shared pieces for the model-backend tests: an incident, a resource, and a fake `read`."""

from __future__ import annotations

from typing import Any

from opsgraph.agents.records import Incident
from opsgraph.tools.inventory import Inventory, Resource
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Health, Snapshot

MiB = 2**20


def redis_info(used_mb: float = 62.0, max_mb: float = 64.0, **extra: Any) -> dict[str, Any]:
    return {
        "used_memory": int(used_mb * MiB),
        "maxmemory": int(max_mb * MiB),
        "maxmemory_policy": "noeviction",
        "oom_rejected_writes": 12,
        "evicted_keys": 0,
        "dbsize": 70,
        "mem_fragmentation_ratio": 1.1,
        **extra,
    }


class FakeRead:
    """Same call signature as ReadOnlyTools: answers from a table, records every call."""

    def __init__(self, outputs: dict[str, dict[str, Any]] | None = None) -> None:
        self.outputs = outputs if outputs is not None else {"redis_info": redis_info()}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, tool: str, args: dict[str, Any]) -> ToolOutcome:
        self.calls.append((tool, dict(args)))
        if tool in self.outputs:
            return ToolOutcome(ok=True, output=self.outputs[tool], duration_s=0.0)
        return ToolOutcome(ok=False, error=f"{tool} unavailable here", duration_s=0.0)


def cache_inventory(password_env: str | None = None) -> Inventory:
    connection: dict[str, Any] = {"host": "127.0.0.1", "port": 16379}
    if password_env:
        connection["password_env"] = password_env
    return Inventory.model_validate(
        {"resources": [{"name": "cache", "kind": "redis", "connection": connection, "policy": {"max_memory_mb": 256}}]}
    )


def cache_resource(inventory: Inventory | None = None) -> Resource:
    return (inventory or cache_inventory()).get("cache")


def redis_incident() -> Incident:
    return Incident(
        incident_id="inc-test-cache",
        resource="cache",
        kind="redis",
        symptom="redis_memory_pressure",
        fingerprint="cache:redis_memory_pressure",
        severity=Health.FAILED,
        fault_started_at=1.0,
        detected_at=2.0,
    )


def redis_snapshot() -> Snapshot:
    return Snapshot(
        resource="cache",
        kind="redis",
        health=Health.FAILED,
        symptom="redis_memory_pressure",
        reasons=["memory 62.0 MiB of maxmemory 64.0 MiB (96.9 %; failed at >= 95 %)"],
        metrics={"memory_used_pct": 96.9},
        taken_at=2.0,
    )


DIAGNOSIS_ANSWER: dict[str, Any] = {
    "root_cause": "the dataset filled maxmemory (62 of 64 MiB)",
    "evidence": ["used_memory 62 MiB of 64 MiB", "12 OOM-rejected writes"],
    "hypotheses": [
        {"cause": "fragmentation", "likelihood": 0.1, "evidence_for": [], "evidence_against": ["ratio 1.1"]},
        {"cause": "dataset growth", "likelihood": 0.8, "evidence_for": ["62/64 MiB"], "evidence_against": []},
    ],
    "confidence": 0.8,
}

PLAN_ANSWER: dict[str, Any] = {
    "summary": "raise maxmemory to 96 MiB",
    "steps": [
        {
            "tool": "redis_scale_memory",
            "args": {"resource": "cache", "maxmemory_mb": 96},
            "rationale": "62 MiB in use",
            "expected_effect": "no more OOM",
        }
    ],
}
