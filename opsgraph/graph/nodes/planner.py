"""Planner node: the reasoning backend proposes steps; the policy engine reviews each one.

A model whose plan the policy refuses gets the reasons back for one re-plan; if that is
refused too, the runbook's plan replaces it (recorded as a fallback). The runbook's own
refusals are final: it would only propose the same thing again.

An operator may answer the approval with a change instead: the next plan answers it (see
`_answer_change`), and is reviewed by the policy like any other.

A plan that already ran without fixing the incident is never run again: after the
verifier's feedback the backend must come up with something different, or the
incident escalates (a restart that failed three times in a row helps nobody).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.agents.reasoning import Reasoner
from opsgraph.agents.records import Diagnosis, Incident, Plan, PlanRevision
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.agents.runbooks.common import BACKEND as RUNBOOK
from opsgraph.agents.runbooks.revision import revise
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.policy import review_plan
from opsgraph.graph.schemas import ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, event, reasoning_entry
from opsgraph.tools.catalogue import tools_for
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

    def review(plan: Plan) -> list[ReviewedStep]:
        untrusted = plan.informed_by_untrusted_text
        return review_plan(plan.steps, ctx.inventory, {incident.resource}, ctx.approval_mode, untrusted)

    def attempt(backend: Reasoner, feedback: str | None) -> tuple[Plan, list[ReviewedStep]]:
        plan = backend.plan(incident, diagnosis, resource, read, feedback)
        return plan, review(plan)

    asked = _change_asked(state)
    if asked is not None:
        previous = Plan.model_validate(state["plan"])
        feedback = state.get("feedback")
        plan, reviewed, log = _answer_change(asked, previous, reasoner, resource, attempt, review, feedback)
    else:
        plan, reviewed = attempt(reasoner, state.get("feedback"))
        log = [reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback)]
        if _refusals(reviewed) and reasoner.name != RUNBOOK:
            feedback = f"The policy engine refused your plan: {_refusals(reviewed)}. Plan again."
            plan, reviewed = attempt(reasoner, feedback)
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
    timeline = [
        *read.timeline("planner", now),
        event("planner", f"plan {plan_no} [{plan.backend}]: {plan.summary} ({verdicts})", now),
    ]
    update: dict[str, Any] = {
        "plan": plan.model_dump(mode="json"),
        "plan_no": plan_no,
        "reviewed": [r.model_dump(mode="json") for r in reviewed],
        "reasoning_log": log,
        "timeline": timeline,
    }
    if asked is not None:  # answered: the next plan (a verifier's retry, say) must not see it again
        answer = plan.revision.note if plan.revision is not None else "the plan answers it"
        timeline.append(event("planner", f"{asked.by}'s change to plan {asked.of_plan}: {answer}", now))
        update["operator_change"] = None
    return update


def _change_asked(state: IncidentState) -> PlanRevision | None:
    """The operator's change to the current plan, if its approval was answered with one."""
    raw = state.get("operator_change")
    if raw is None:
        return None
    asked = PlanRevision.model_validate(raw)
    return asked if asked.of_plan == state.get("plan_no") else None


def _answer_change(
    asked: PlanRevision,
    previous: Plan,
    reasoner: Reasoner,
    resource: Resource,
    attempt: Callable[[Reasoner, str | None], tuple[Plan, list[ReviewedStep]]],
    review: Callable[[Plan], list[ReviewedStep]],
    earlier_feedback: str | None,
) -> tuple[Plan, list[ReviewedStep], list[dict[str, Any]]]:
    """The plan that answers an operator's change to `previous`, reviewed by the policy.

    The runbook applies the change by rule to the plan the operator saw; a model re-plans
    with the change as feedback (and the rules apply it instead when the model fails). A
    revised plan the policy refuses is not run and does not end the incident: the plan the
    operator saw stands and is asked again, with the policy's reasons.
    """
    tools = {spec.name: spec for spec in tools_for(resource) if spec.mutating}

    def by_rules(failed: Plan | None) -> Plan:
        """The rules' revision; after `failed`, the model's fallback answer, with its reason and tokens."""
        plan = revise(previous, asked, resource.name, tools)
        spent = (failed.tokens, failed.fallback) if failed is not None else ({}, None)
        return plan.model_copy(update={"backend": RUNBOOK, "tokens": spent[0], "fallback": spent[1]})

    log: list[dict[str, Any]] = []
    if reasoner.name == RUNBOOK:
        plan = by_rules(None)
        reviewed = review(plan)
    else:
        feedback = _change_feedback(asked, previous, earlier_feedback)
        plan, reviewed = attempt(reasoner, feedback)
        if plan.backend != RUNBOOK and (refused := _refusals(reviewed)):
            log.append(reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback))
            again = f"{feedback}\nThe policy engine refused your revised plan: {refused}. Plan again."
            plan, reviewed = attempt(reasoner, again)
        if plan.backend == RUNBOOK:  # the model failed: the rules apply the change to the plan the operator saw
            plan = by_rules(plan)
            reviewed = review(plan)
        else:
            plan = plan.model_copy(update={"revision": _model_revision(asked, previous, plan)})
    log.append(reasoning_entry("planner", plan.backend, plan.tokens, plan.fallback))
    if refused := _refusals(reviewed):
        note = f"the policy refused the revised plan ({refused}): plan {asked.of_plan} stands unchanged"
        revision = asked.model_copy(update={"unchanged": True, "note": note})
        plan = previous.model_copy(update={"revision": revision, "tokens": {}, "fallback": None})
        reviewed = review(plan)
    return plan, reviewed, log


def _change_feedback(asked: PlanRevision, previous: Plan, earlier: str | None) -> str:
    steps = "; ".join(f"{s.tool} {json.dumps(s.args, sort_keys=True)}" for s in previous.steps) or "no steps"
    text = (
        f"The operator reviewed plan {asked.of_plan} ({steps}) and asked for this change: {asked.change}\n"
        "Plan again with that change; the policy engine reviews every step as before."
    )
    return f"{text}\nEarlier feedback: {earlier}" if earlier else text


def _model_revision(asked: PlanRevision, previous: Plan, plan: Plan) -> PlanRevision:
    if [s.digest() for s in plan.steps] == [s.digest() for s in previous.steps]:
        note = f"{plan.backend} re-planned with the change and proposed the same steps: plan {asked.of_plan} stands"
        return asked.model_copy(update={"unchanged": True, "note": note})
    return asked.model_copy(update={"note": f"{plan.backend} re-planned with the change as feedback"})


def _runbook_instead(
    incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadOnlyTools, refused: str, ctx: Context
) -> tuple[Plan, list[ReviewedStep]]:
    plan = RunbookReasoner().plan(incident, diagnosis, resource, read, None)
    plan = plan.model_copy(update={"fallback": f"the policy refused the model's plan twice: {refused}"})
    return plan, review_plan(plan.steps, ctx.inventory, {incident.resource}, ctx.approval_mode)
