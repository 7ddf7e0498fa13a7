"""Executor node: run the reviewed plan, exactly once per step, through the catalogue.

Before each step it checks again — the policy review, and for steps that needed a
human, an approval in the ledger bound to this step's exact digest. It writes an
intent row before and a result row after each call (idempotency key = incident +
plan + step): a step with a result is never run again, and a non-idempotent step
that has an intent but no result (a crash mid-call) is not blindly repeated. The
result row carries the data check of disruptive steps; a step after which the data
changed unexpectedly ends the plan (the verifier then fails the incident).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.records import Incident, Plan
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.ledger import action_key
from opsgraph.graph.policy import review_step
from opsgraph.graph.schemas import ActionRecord, ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, event
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.runner import run_tool


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


def _gate(
    ctx: Context, incident: Incident, plan: Plan, plan_no: int, step: ReviewedStep, key: str
) -> ActionRecord | None:
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
    if ctx.ledger.has_intent(key) and not CATALOGUE[step.step.tool].idempotent:
        return _blocked(
            step, "unknown", "a previous run started this step and did not record a result; not repeating it"
        )
    return None


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
        key = action_key(incident.incident_id, plan_no, step.index)
        record = ctx.ledger.result_for(key) or _gate(ctx, incident, plan, plan_no, step, key)
        if record is None:
            record = ctx.ledger.recorded_call(
                key, incident.incident_id, plan_no, step.index, step.step.tool, step.step.args,
                partial(run_tool, step.step.tool, step.step.args, ctx.tools, ctx.tool_timeout_s),
            )  # fmt: skip
        records.append(record)
        if record.status != "ok" or record.data_lost:
            break  # later steps assume earlier ones worked, and never build on lost data
    return {
        "actions": [r.model_dump(mode="json") for r in records],
        "timeline": [event("executor", _summary(r), r.finished_at) for r in records],
    }
