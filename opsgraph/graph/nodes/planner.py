"""Planner node: the reasoning backend proposes steps; the policy engine reviews each one.

A model whose plan the policy refuses gets the reasons back for one re-plan; if that is
refused too, the runbook's plan replaces it (recorded as a fallback). The runbook's own
refusals are final: it would only propose the same thing again.

A plan that already ran without fixing the incident is never run again: after the
verifier's feedback the backend must come up with something different, or the
incident escalates (a restart that failed three times in a row helps nobody).
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.agents.reasoning import Reasoner
from opsgraph.agents.records import Diagnosis, Incident, Plan
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.agents.runbooks.common import BACKEND as RUNBOOK
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.policy import review_plan
from opsgraph.graph.schemas import ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, event, reasoning_entry
from opsgraph.tools.inventory import Resource


def _refusals(reviewed: list[ReviewedStep]) -> str:
    return "; ".join(f"step {r.index} {r.step.tool}: {r.reason}" for r in reviewed if r.verdict is StepVerdict.REFUSE)


def _repeats(reviewed: list[ReviewedStep], failed_plans: list[list[str]]) -> str | None:
    """Why this plan must not run: the same steps already ran and did not fix the incident."""
    digests = [r.digest for r in reviewed]
    if not digests or digests not in failed_plans:
        return None
    steps = ", ".join(r.step.tool for r in reviewed)
    return f"the only plan left ({steps}) already ran and did not fix it: escalate to a human"


def planner(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime.context)
    incident = Incident.model_validate(state["incident"])
    diagnosis = Diagnosis.model_validate(state["diagnosis"])
    resource = ctx.inventory.get(incident.resource)
    read = ReadOnlyTools(ctx.tools, ctx.tool_timeout_s)
    reasoner = ctx.reasoning_backend("planner")

    def attempt(backend: Reasoner, feedback: str | None) -> tuple[Plan, list[ReviewedStep]]:
        plan = backend.plan(incident, diagnosis, resource, read, feedback)
        untrusted = plan.informed_by_untrusted_text
        return plan, review_plan(plan.steps, ctx.inventory, {incident.resource}, ctx.approval_mode, untrusted)

    plan, reviewed = attempt(reasoner, state.get("feedback"))
    log = [reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback)]
    if _refusals(reviewed) and reasoner.name != RUNBOOK:
        plan, reviewed = attempt(reasoner, f"The policy engine refused your plan: {_refusals(reviewed)}. Plan again.")
        log.append(reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback))
        if refused := _refusals(reviewed):
            plan, reviewed = _runbook_instead(incident, diagnosis, resource, read, refused, ctx)
            log.append(reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback))

    if repeated := _repeats(reviewed, state.get("failed_plans", [])):
        plan = Plan(steps=[], summary=repeated, backend=plan.backend)
        reviewed = []
    plan_no = state.get("plan_no", 0) + 1
    ctx.ledger.record_plan(incident.incident_id, plan_no, plan, reviewed)
    now = time.time()
    verdicts = ", ".join(f"{r.step.tool}={r.verdict}" for r in reviewed) or "no steps"
    return {
        "plan": plan.model_dump(mode="json"),
        "plan_no": plan_no,
        "reviewed": [r.model_dump(mode="json") for r in reviewed],
        "reasoning_log": log,
        "timeline": [
            *read.timeline("planner", now),
            event("planner", f"plan {plan_no} [{plan.backend}]: {plan.summary} ({verdicts})", now),
        ],
    }


def _runbook_instead(
    incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadOnlyTools, refused: str, ctx: Context
) -> tuple[Plan, list[ReviewedStep]]:
    plan = RunbookReasoner().plan(incident, diagnosis, resource, read, None)
    plan = plan.model_copy(update={"fallback": f"the policy refused the model's plan twice: {refused}"})
    return plan, review_plan(plan.steps, ctx.inventory, {incident.resource}, ctx.approval_mode)
