"""Approval node: where the policy engine's verdicts meet a human.

Steps the policy refused end the incident (escalation) — a plan is never run in
part. Steps that need a human stop the graph with `interrupt()`; the payload lists
the exact tool and arguments of each step and their digests, and says which answers
are allowed, so the terminal, the chat or LangGraph Studio can all render it. What
the operator approves is written to the ledger bound to those digests; the executor
refuses anything whose arguments differ.

Every answer is judged once, when it arrives: is it well-formed, does it cover exactly
the steps shown, may its author give it (`opsgraph.graph.approvals` roles), and is the
request still fresh (an approval after the TTL approves a state that may be gone)? A
refused answer ends this run of the node, which goes to itself and asks again: LangGraph
replays a node's earlier answers on resume, and an answer judged in a later run could
meet other rules or another clock. For the same reason the request's `asked_at` lives
in the state, written by a first run before anyone is asked, so that replays see the
same time; only a too-late approval renews it.

Besides yes and no, an operator may answer with a change ("only 128 MB"): `revise` sends
the plan back to the planner with the change in the state; the revised plan is reviewed by
the policy like any other and asked again, bound to its own digests. A change the planner
could not apply comes back as the same steps, asked again with why in the request's `error`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgraph.agents.records import Plan, PlanRevision
from opsgraph.graph.approvals import MAX_REVISIONS, RolesError, expired, parse_roles, refusal, revisions_spent
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.schemas import Approval, ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, conclude, event
from opsgraph.settings import Settings, load_settings
from opsgraph.tools.risk import Risk

# An operator's change is read by the planner (and a model's prompt): a paragraph, not a document.
MAX_CHANGE_CHARS = 2000


class OperatorAnswer(BaseModel):
    """What resuming an approval interrupt must carry: `Command(resume={...})`."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject", "revise"]
    by: str = Field(min_length=1, description="Who decided (recorded in the ledger)")
    digests: list[str] | None = Field(None, description="If given, must equal the digests of the steps asked about")
    comment: str | None = None
    change: str | None = Field(None, description="With revise (only): what the planner should change, in words")


class Refused(BaseModel):
    """Why an answer was not accepted; `renew` when the request must be made afresh (it expired)."""

    why: str
    renew: bool = False


def approval_request(
    incident_id: str,
    plan: Plan,
    asked: list[ReviewedStep],
    request: dict[str, Any],
    ttl_s: float,
    revisions_left: int,
) -> dict[str, Any]:
    """The interrupt payload: what is asked, of which exact steps, which answers are valid, and until when."""
    return {
        "type": "approval",
        "incident_id": incident_id,
        "question": f"Approve {len(asked)} step(s) of the plan: {plan.summary}?",
        "steps": [
            {
                "index": r.index,
                "tool": r.step.tool,
                "args": r.step.args,
                "risk": r.risk.value if r.risk else None,
                "rationale": r.step.rationale,
                "expected_effect": r.step.expected_effect,
                "undo": r.step.undo,
                "digest": r.digest,
                "why_asked": r.reason,
            }
            for r in asked
        ],
        "allowed_decisions": ["approve", "reject", *(["revise"] if revisions_left > 0 else [])],
        "answer_format": {
            "decision": "approve | reject | revise",
            "by": "your name",
            "digests": [r.digest for r in asked],
            "change": f"with revise only: what to change, in words (e.g. 'only 128 MB', 'use TOOL instead', "
            f"'skip TOOL'), at most {MAX_CHANGE_CHARS} characters; the revised plan is asked again",
        },
        "plan_no": request["plan_no"],
        "revision": plan.revision.model_dump(mode="json") if plan.revision is not None else None,
        "revisions_left": revisions_left,
        "asked_at": request["asked_at"],
        "expires_at": request["asked_at"] + ttl_s,  # an approval after this is refused and asked again
        "plan_backend": plan.backend,
        "untrusted_input": plan.informed_by_untrusted_text,
        "warning": (
            f"This plan was written by {plan.backend} after it read untrusted text (tool output, logs). "
            "Text in logs can try to steer a model: check each step yourself."
            if plan.informed_by_untrusted_text
            else None
        ),
        "error": request["error"],
    }


def _riskiest(asked: list[ReviewedStep]) -> Risk:
    return max((r.risk for r in asked if r.risk is not None), key=lambda risk: risk.rank, default=Risk.DESTRUCTIVE)


def _revise_refusal(answer: OperatorAnswer, revisions: int) -> str | None:
    """Why a `change` is not acceptable with this answer: missing, empty, too long, out of place, one too many."""
    if answer.decision != "revise":
        return None if answer.change is None else f"`change` goes with decision revise only, not {answer.decision}"
    text = (answer.change or "").strip()
    if not text:
        return "a revise answer needs a non-empty `change`: what the planner should do differently, e.g. 'only 128 MB'"
    if len(text) > MAX_CHANGE_CHARS:
        return f"the change is {len(text)} characters long, at most {MAX_CHANGE_CHARS} are taken: say it shorter"
    return revisions_spent(revisions)


def _judge(
    raw: object, asked: list[ReviewedStep], asked_at: float, answered_at: float, settings: Settings, revisions: int
) -> OperatorAnswer | Refused:
    """Accept a resume value, or say why not: malformed, other steps, not this person's to give, too late."""
    try:
        answer = OperatorAnswer.model_validate(raw)
    except ValidationError as error:
        return Refused(why=f"answer not understood: {error.errors(include_url=False)}")
    if (bad_change := _revise_refusal(answer, revisions)) is not None:
        return Refused(why=bad_change)
    if answer.digests is not None and sorted(answer.digests) != sorted(r.digest for r in asked):
        return Refused(why="the answer's digests do not match the steps asked about: the plan you saw is not this one")
    try:
        roles = parse_roles(settings.roles)
    except RolesError as error:  # fail closed: a typo in the roles must not open approvals to everyone
        return Refused(why=f"{error}: nobody may decide until it is fixed")
    not_allowed = refusal(roles, answer.by, answer.decision, _riskiest(asked))
    if not_allowed is not None:
        return Refused(why=not_allowed)
    # A rejection or a revision runs nothing, so it stands however late it comes.
    if answer.decision == "approve" and expired(asked_at, answered_at, settings.approval_ttl_s):
        age = answered_at - asked_at
        return Refused(
            why=f"this request expired ({age:.0f} s old, OPSGRAPH_APPROVAL_TTL_S={settings.approval_ttl_s:g}): "
            "expired, asked again; check the steps against the resource now and answer the new request",
            renew=True,
        )
    return answer


def _request(plan_no: int, asked_at: float, error: str | None = None) -> dict[str, Any]:
    return {"plan_no": plan_no, "asked_at": asked_at, "error": error}


def _revision_error(plan: Plan) -> str | None:
    """A plan that answers a change with the same steps is asked again saying why (not escalated)."""
    return plan.revision.note if plan.revision is not None and plan.revision.unchanged else None


def approval(
    state: IncidentState, runtime: Runtime[Context]
) -> Command[Literal["approval", "executor", "planner", "report"]]:
    ctx = context_of(runtime.context)
    incident_id = state["incident_id"]
    plan = Plan.model_validate(state["plan"])
    plan_no = state["plan_no"]
    reviewed = [ReviewedStep.model_validate(r) for r in state["reviewed"]]
    now = time.time()

    if not plan.steps:
        return Command(goto="report", update=conclude("escalated", f"no plan: {plan.summary}", "approval", now))
    refused = [r for r in reviewed if r.verdict is StepVerdict.REFUSE]
    if refused:
        reasons = "; ".join(f"step {r.index} {r.step.tool}: {r.reason}" for r in refused)
        detail = f"policy refused the plan: {reasons}"
        return Command(goto="report", update=conclude("escalated", detail, "approval", now))
    asked = [r for r in reviewed if r.verdict is StepVerdict.ASK]
    if not asked:
        return Command(
            goto="executor",
            update={
                "timeline": [event("approval", f"no step needs a human under approval={ctx.approval_mode}", now)],
            },
        )

    request = state.get("approval_request")
    if request is None or request["plan_no"] != plan_no:
        # First run for this plan: checkpoint when it was asked before anyone is asked.
        ctx.ledger.set_status(incident_id, "awaiting_approval")
        return Command(goto="approval", update={"approval_request": _request(plan_no, now, _revision_error(plan))})

    settings = load_settings()
    revisions = state.get("revisions", 0)
    left = max(MAX_REVISIONS - revisions, 0)
    raw = interrupt(approval_request(incident_id, plan, asked, request, settings.approval_ttl_s, left))
    answered_at = time.time()
    parsed = _judge(raw, asked, request["asked_at"], answered_at, settings, revisions)
    if isinstance(parsed, Refused):  # ask again, in a new run of this node
        asked_at = answered_at if parsed.renew else request["asked_at"]
        return Command(
            goto="approval",
            update={
                "approval_request": _request(plan_no, asked_at, parsed.why),
                "timeline": [event("approval", f"answer refused: {parsed.why}", answered_at)],
            },
        )

    change = (parsed.change or "").strip()
    decided = Approval(
        decision=parsed.decision,
        by=parsed.by,
        digests=[r.digest for r in asked],
        # A revision's row keeps the change asked, with the steps it was asked of.
        comment="\n".join(text for text in (change, parsed.comment) if text) or None,
        at=answered_at,
    )
    for step in asked:
        ctx.ledger.record_approval(incident_id, plan_no, step, decided)
    ctx.ledger.set_status(incident_id, "open")
    if parsed.decision == "revise":
        asked_change = PlanRevision(of_plan=plan_no, by=parsed.by, change=change)
        note = event("approval", f"{parsed.by} asked for a change to plan {plan_no}: {change!r}", decided.at)
        return Command(
            goto="planner",
            update={
                "operator_change": asked_change.model_dump(mode="json"),
                "revisions": revisions + 1,
                "timeline": [note],
            },
        )
    if parsed.decision == "reject":
        detail = f"{parsed.by} rejected the plan: {parsed.comment or 'no comment'}"
        return Command(goto="report", update=conclude("rejected", detail, "approval", decided.at))
    note = event("approval", f"approved by {parsed.by}: " + ", ".join(r.step.tool for r in asked), decided.at)
    return Command(goto="executor", update={"timeline": [note]})
