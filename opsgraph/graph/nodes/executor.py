"""Executor node: run the reviewed plan, exactly once per step, through the catalogue.

Before each step it checks again — the policy review, and for steps that needed a
human, an approval in the ledger bound to this step's exact digest and a fresh probe (a
resource that recovered while the request waited skips the step). Each step is claimed
in the ledger before its tool runs (`exactly_once`): a step with a result is never run
again, a step another process is running is waited for, and a step whose worker died
mid-call is settled by looking at the target — if it did not take effect it gets one
more attempt. The result row carries the data check of disruptive steps; a step after
which the data changed unexpectedly ends the plan (the verifier then fails the incident).
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.records import Incident, Plan
from opsgraph.graph.caps import action_budget_refusal
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.exactly_once import NOT_DONE, run_once
from opsgraph.graph.ledger import action_key
from opsgraph.graph.policy import review_step
from opsgraph.graph.schemas import ActionRecord, ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, event
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

# A step settled as "did not take effect" after a crash is tried again, once.
_ATTEMPTS = 2


def _blocked(step: ReviewedStep, status: str, why: str) -> ActionRecord:
    now = time.time()
    return ActionRecord(
        index=step.index,
        tool=step.step.tool,
        args=step.step.args,
        status=status,
        error=why,
        started_at=now,
        finished_at=now,
    )


def _gate(ctx: Context, incident: Incident, plan: Plan, plan_no: int, step: ReviewedStep) -> ActionRecord | None:
    """Why this step must not run now, as a record; None when it may run."""
    scope = {incident.resource}
    untrusted = plan.informed_by_untrusted_text
    fresh = review_step(step.index, step.step, ctx.inventory, scope, ctx.approval_mode, untrusted)
    if fresh.verdict is StepVerdict.REFUSE:
        return _blocked(step, "refused", fresh.reason)
    if fresh.verdict is StepVerdict.ASK:
        approved = ctx.ledger.approved_digest(incident.incident_id, plan_no, step.index)
        if approved != fresh.digest:
            return _blocked(step, "refused", "needs a human approval of these exact arguments; none recorded")
        # The approval may be hours old: a resource that recovered meanwhile needs no risky step.
        resource = str(step.step.args["resource"])
        if probe(ctx.inventory.get(resource)).health is Health.HEALTHY:
            why = f"resource {resource} is healthy now; the approved step is no longer needed"
            return _blocked(step, "skipped", why)
    if (refusal := action_budget_refusal(ctx, incident, plan_no, step)) is not None:  # pause, caps, crash loop
        return _blocked(step, refusal.status, refusal.why)
    return None


def _run_step(ctx: Context, incident: Incident, plan: Plan, plan_no: int, step: ReviewedStep) -> ActionRecord:
    """The step's one result: recorded already, refused now, or run (claimed) now."""
    for attempt in range(_ATTEMPTS):
        key = action_key(incident.incident_id, plan_no, step.index, attempt)
        record = ctx.ledger.result_for(key) or _gate(ctx, incident, plan, plan_no, step)
        if record is None:
            record = run_once(ctx, key, incident.incident_id, plan_no, step)
        if record.status != NOT_DONE:
            return record
    return _blocked(step, "refused", f"interrupted by crashes {_ATTEMPTS} times without taking effect; a human decides")


def _summary(record: ActionRecord) -> str:
    text = f"{record.tool}({record.args}) -> {record.status}{': ' + record.error if record.error else ''}"
    if record.data_lost:
        text += f"; DATA CHANGED: {'; '.join(record.data_lost)}"
    return text


def executor(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime.context)
    incident = Incident.model_validate(state["incident"])
    plan = Plan.model_validate(state["plan"])
    plan_no = state["plan_no"]
    records: list[ActionRecord] = []
    for step in (ReviewedStep.model_validate(r) for r in state["reviewed"]):
        record = _run_step(ctx, incident, plan, plan_no, step)
        records.append(record)
        if record.status != "ok" or record.data_lost:
            break  # later steps assume earlier ones worked, and never build on lost data
    return {
        "actions": [r.model_dump(mode="json") for r in records],
        "timeline": [event("executor", _summary(r), r.finished_at) for r in records],
    }
