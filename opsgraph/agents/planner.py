"""Planner node: the reasoning backend proposes steps; the policy engine reviews each one."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.policy import review_plan
from opsgraph.graph.schemas import Diagnosis, Incident
from opsgraph.graph.state import IncidentState, event


def planner(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime.context)
    incident = Incident.model_validate(state["incident"])
    diagnosis = Diagnosis.model_validate(state["diagnosis"])
    resource = ctx.inventory.get(incident.resource)
    read = ReadOnlyTools(ctx.tools, ctx.tool_timeout_s)
    plan = ctx.reasoning_backend().plan(incident, diagnosis, resource, read, state.get("feedback"))
    plan_no = state.get("plan_no", 0) + 1
    reviewed = review_plan(plan.steps, ctx.inventory, {incident.resource}, ctx.approval_mode)
    ctx.ledger.record_plan(incident.incident_id, plan_no, plan, reviewed)
    now = time.time()
    verdicts = ", ".join(f"{r.step.tool}={r.verdict}" for r in reviewed) or "no steps"
    return {
        "plan": plan.model_dump(mode="json"),
        "plan_no": plan_no,
        "reviewed": [r.model_dump(mode="json") for r in reviewed],
        "timeline": [
            *read.timeline("planner", now),
            event("planner", f"plan {plan_no} [{plan.backend}]: {plan.summary} ({verdicts})", now),
        ],
    }
