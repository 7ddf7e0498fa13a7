"""Building blocks every runbook shares: the backend's name and probe-only diagnoses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opsgraph.agents.reasoning import ReadTool
from opsgraph.graph.schemas import Diagnosis, Incident, Plan, Snapshot
from opsgraph.tools.inventory import Resource

BACKEND = "runbook"


def observed(incident: Incident, evidence: list[str], root_cause: str, confidence: float) -> Diagnosis:
    """A diagnosis resting only on what the probe saw."""
    return Diagnosis(
        root_cause=root_cause,
        symptom=incident.symptom,
        evidence=evidence,
        confidence=confidence,
        severity=incident.severity,
        backend=BACKEND,
    )


@dataclass(frozen=True)
class Runbook:
    """How to diagnose and fix one failure signature (a probe symptom)."""

    diagnose: Callable[[Incident, Snapshot, ReadTool], Diagnosis]
    plan: Callable[[Incident, Resource, ReadTool], Plan]
