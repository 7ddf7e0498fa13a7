"""Verifier node: re-probe until the resource is healthy and stays so, or the deadline passes.

A single healthy probe is not recovery: the resource must stay healthy for the
settle window. On failure the graph loops back to the diagnostician with what was
seen (at most `max_retries` times), then escalates.

Before any of that: if a step of the plan changed the data in a way it was not
declared to (a restart that brought back an empty server, another cluster, another
config), the incident fails at once as a data-safety failure. A healthy probe of the
wrong data is not a recovery, and a retry would only build on it.
"""

from __future__ import annotations

import time
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from opsgraph.agents.records import Incident
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.failpoints import DURING_VERIFICATION, failpoint
from opsgraph.graph.schemas import ActionRecord, Verification
from opsgraph.graph.state import IncidentState, conclude, event
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes import probe
from opsgraph.tools.probes.grading import recovered_from
from opsgraph.tools.snapshot import Health, Snapshot


def watch_recovery(
    resource: Resource, symptom: str, deadline_s: float, settle_s: float, interval_s: float
) -> Verification:
    """Probe until the incident's symptom has stayed gone for `settle_s` (see `recovered_from`)."""
    deadline = time.monotonic() + deadline_s
    healthy_since: float | None = None
    checks = 0
    while True:
        snapshot = probe(resource)
        checks += 1
        if recovered_from(snapshot, symptom):
            healthy_since = healthy_since or snapshot.taken_at
            if snapshot.taken_at - healthy_since >= settle_s:
                return Verification(
                    healthy=True,
                    recovered_at=healthy_since,
                    snapshot=snapshot,
                    checks=checks,
                    detail=f"healthy for {settle_s:.1f} s over {checks} probes{_standing(snapshot)}",
                )
        else:
            healthy_since = None
        if time.monotonic() >= deadline:
            return Verification(
                healthy=False,
                snapshot=snapshot,
                checks=checks,
                detail=f"not healthy for {settle_s:.1f} s within {deadline_s:.0f} s: {'; '.join(snapshot.reasons)}",
            )
        time.sleep(interval_s)


def _standing(snapshot: Snapshot) -> str:
    if snapshot.health is Health.HEALTHY:
        return ""
    return f" (still standing, reported on its own: {', '.join(snapshot.unhealthy_symptoms())})"


def _data_lost(state: IncidentState) -> list[str]:
    """Unexpected data changes left by any step of this incident (the plan stops at the first)."""
    actions = [ActionRecord.model_validate(a) for a in state.get("actions", [])]
    return [f"after {action.tool}: {change}" for action in actions for change in action.data_lost]


def _failures(state: IncidentState) -> str:
    """The steps of the plan that failed, worded for the next plan's author."""
    plan_no = state.get("plan_no", 0)
    failed = [
        f"{action['tool']} failed: {action['error']}"
        for action in state.get("actions", [])
        if action.get("status") != "ok" and action.get("error")
    ]
    return f"; in plan {plan_no} " + "; ".join(failed) if failed else ""


def verifier(state: IncidentState, runtime: Runtime[Context]) -> Command[Literal["diagnostician", "report"]]:
    ctx = context_of(runtime.context)
    incident = Incident.model_validate(state["incident"])
    if lost := _data_lost(state):
        detail = f"DATA SAFETY FAILURE on {incident.resource}: {'; '.join(lost)}; a human must look now"
        return Command(goto="report", update=conclude("data_safety_failure", detail, "verifier", time.time()))
    resource = ctx.inventory.get(incident.resource)
    failpoint(DURING_VERIFICATION)
    result = watch_recovery(resource, incident.symptom, ctx.verify_deadline_s, ctx.settle_s, ctx.probe_interval_s)
    update = {
        "verification": result.model_dump(mode="json"),
        "timeline": [event("verifier", result.detail, time.time())],
    }
    if result.healthy:
        return Command(goto="report", update={**update, "outcome": "resolved", "outcome_detail": result.detail})
    attempt = state.get("attempt", 0) + 1
    update["failed_plans"] = [[step["digest"] for step in state.get("reviewed", [])]]
    if attempt <= ctx.max_retries:
        feedback = f"after plan {state['plan_no']} the resource is still unhealthy: {result.detail}{_failures(state)}"
        return Command(goto="diagnostician", update={**update, "attempt": attempt, "feedback": feedback})
    return Command(
        goto="report",
        update={
            **update,
            "attempt": attempt,
            "outcome": "escalated",
            "outcome_detail": f"still unhealthy after {attempt} attempts: {result.detail}",
        },
    )
