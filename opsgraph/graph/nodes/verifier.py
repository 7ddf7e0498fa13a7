"""Verifier node: re-probe until the resource is healthy and stays so, or the deadline passes.

A single healthy probe is not recovery: the resource must stay healthy for the
settle window. On failure the graph loops back to the diagnostician with what was
seen (at most `max_retries` times), then escalates.

Before any of that: if a step of the plan changed the data in a way it was not
declared to (a restart that brought back an empty server, another cluster, another
config), the incident fails at once as a data-safety failure. A healthy probe of the
wrong data is not a recovery, and a retry would only build on it.

A restart that does not stick is a crash loop: when this incident tried a restart and the
resource fails verification anyway (it came back and fell again, or died while starting), the incident
escalates at once — no retry — and holds the resource until a human resumes it
(`opsgraph resume --resource NAME`). A step the executor refused for a pause, a spent cap
or a crash loop (see `opsgraph.graph.caps`) ends the incident the same way, without probing.
"""

from __future__ import annotations

import time
from typing import Literal, get_args

from langgraph.runtime import Runtime
from langgraph.types import Command

from opsgraph.agents.records import Incident
from opsgraph.graph.caps import HOLDING, RefusalStatus, crash_loop_after
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.control import Controls
from opsgraph.graph.failpoints import DURING_VERIFICATION, failpoint
from opsgraph.graph.schemas import ActionRecord, Verification
from opsgraph.graph.state import IncidentState, conclude, event
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes import probe
from opsgraph.tools.probes.grading import recovered_from
from opsgraph.tools.snapshot import Health, Snapshot


def watch_recovery(
    resource: Resource, symptom: str, deadline_s: float, settle_s: float, interval_s: float, relapse_ends: bool = False
) -> Verification:
    """Probe until the incident's symptom has stayed gone for `settle_s` (see `recovered_from`).

    With `relapse_ends`, a resource that recovers and falls again ends the watch at once
    (after a restart that is the crash loop itself: waiting out the deadline shows nothing more).
    """
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
        elif healthy_since is not None and relapse_ends:
            return Verification(
                healthy=False,
                snapshot=snapshot,
                checks=checks,
                detail=f"recovered, then unhealthy again {snapshot.taken_at - healthy_since:.1f} s later: "
                f"{'; '.join(snapshot.reasons)}",
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
    if (refused := _refused_by_caps(state)) is not None:
        return _stopped(ctx, incident, refused)
    resource = ctx.inventory.get(incident.resource)
    failpoint(DURING_VERIFICATION)
    restarted = crash_loop_after(state.get("actions", []))
    result = watch_recovery(
        resource, incident.symptom, ctx.verify_deadline_s, ctx.settle_s, ctx.probe_interval_s, restarted is not None
    )
    update = {
        "verification": result.model_dump(mode="json"),
        "timeline": [event("verifier", result.detail, time.time()), *_grouped(ctx, incident)],
    }
    if result.healthy:
        return Command(goto="report", update={**update, "outcome": "resolved", "outcome_detail": result.detail})
    if restarted is not None:
        tool, error = restarted["tool"], restarted.get("error")
        how = f"{tool} failed ({error})" if error else f"{tool} ran"
        detail = f"crash loop: {how} and {incident.resource} is failing again ({result.detail}); not retried"
        Controls(ctx.ledger).hold(incident.resource, incident.incident_id, detail)
        return Command(goto="report", update={**update, "outcome": "escalated", "outcome_detail": detail})
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


def _refused_by_caps(state: IncidentState) -> ActionRecord | None:
    """The step the executor refused for a pause, a cap or a crash loop (it ends the plan), if any."""
    for action in state.get("actions", []):
        if action.get("status") in get_args(RefusalStatus):
            return ActionRecord.model_validate(action)
    return None


def _stopped(ctx: Context, incident: Incident, refused: ActionRecord) -> Command[Literal["diagnostician", "report"]]:
    """End the incident on a caps refusal: paused, or escalated (holding the resource when the rule says so)."""
    why = refused.error or refused.status
    if refused.status in HOLDING:
        Controls(ctx.ledger).hold(incident.resource, incident.incident_id, why)
    outcome = "paused" if refused.status == "paused" else "escalated"
    update = conclude(outcome, f"{refused.tool} not started: {why}", "verifier", time.time())
    update["timeline"] = [*update["timeline"], *_grouped(ctx, incident)]
    return Command(goto="report", update=update)


def _grouped(ctx: Context, incident: Incident) -> list[dict[str, object]]:
    """A timeline entry naming the dependents grouped under this incident by `watch`, if any."""
    dependents = Controls(ctx.ledger).grouped_under(incident.incident_id)
    if not dependents:
        return []
    return [event("verifier", f"grouped dependents: {', '.join(dependents)}", time.time())]
