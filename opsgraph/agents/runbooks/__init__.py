"""The embedded runbook backend: known failure signatures → deterministic diagnosis and plan.

It is the offline default and the fallback when a model fails or is refused. It is honest
about being rule-based: every diagnosis says `backend="runbook"`, and a signature it
does not know yields an empty plan (so the incident escalates) rather than a guess.
One module per target kind holds its signatures (`RUNBOOKS`: symptom → Runbook).
"""

from __future__ import annotations

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Incident, Plan
from opsgraph.agents.runbooks import containers, gcp, http, nginx, postgres, redis
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.inventory import Resource
from opsgraph.tools.snapshot import Snapshot


def _registry(*tables: dict[str, Runbook]) -> dict[str, Runbook]:
    merged: dict[str, Runbook] = {}
    for table in tables:
        if overlap := merged.keys() & table.keys():
            raise RuntimeError(f"two runbooks claim {sorted(overlap)}")
        merged.update(table)
    return merged


RUNBOOKS = _registry(
    redis.RUNBOOKS, postgres.RUNBOOKS, nginx.RUNBOOKS, containers.RUNBOOKS, http.RUNBOOKS, gcp.RUNBOOKS
)


class RunbookReasoner:
    """Deterministic reasoning from known signatures; no model, no network."""

    name = BACKEND

    def diagnose(self, incident: Incident, snapshot: Snapshot, read: ReadTool, feedback: str | None) -> Diagnosis:
        runbook = RUNBOOKS.get(incident.symptom)
        if runbook is None:
            return diagnosis_of(incident, snapshot.reasons, f"no runbook for {incident.symptom}", confidence=0.0)
        return runbook.diagnose(incident, snapshot, read)

    def plan(
        self, incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadTool, feedback: str | None
    ) -> Plan:
        runbook = RUNBOOKS.get(incident.symptom)
        if runbook is None:
            return Plan(
                steps=[], summary=f"no runbook step for {incident.symptom}: escalate to a human", backend=BACKEND
            )
        return runbook.plan(incident, resource, read)
