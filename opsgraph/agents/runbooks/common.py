"""Building blocks every runbook shares: the backend's name and probe-only diagnoses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan
from opsgraph.tools.inventory import Resource
from opsgraph.tools.snapshot import Snapshot

BACKEND = "runbook"


def diagnosis_of(
    incident: Incident,
    evidence: list[str],
    root_cause: str,
    confidence: float,
    hypotheses: Iterable[Hypothesis] = (),
) -> Diagnosis:
    """A runbook's diagnosis of an incident, its hypotheses ranked most likely first."""
    return Diagnosis(
        root_cause=root_cause,
        symptom=incident.symptom,
        evidence=evidence,
        hypotheses=sorted(hypotheses, key=lambda h: h.likelihood, reverse=True),
        confidence=confidence,
        severity=incident.severity,
        backend=BACKEND,
    )


@dataclass(frozen=True)
class Runbook:
    """How to diagnose and fix one failure signature (a probe symptom)."""

    diagnose: Callable[[Incident, Snapshot, ReadTool], Diagnosis]
    plan: Callable[[Incident, Resource, ReadTool], Plan]
