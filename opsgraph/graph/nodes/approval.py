"""Approval node: where the policy engine's verdicts meet a human.

Steps the policy refused end the incident (escalation) — a plan is never run in
part. Steps that need a human stop the graph with `interrupt()`; the payload lists
the exact tool and arguments of each step and their digests, and says which answers
are allowed, so the terminal, the chat or LangGraph Studio can all render it. What
the operator approves is written to the ledger bound to those digests; the executor
refuses anything whose arguments differ.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsgraph.agents.records import Plan
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.schemas import Approval, ReviewedStep, StepVerdict
from opsgraph.graph.state import IncidentState, conclude, event


class OperatorAnswer(BaseModel):
    """What resuming an approval interrupt must carry: `Command(resume={...})`."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    by: str = Field(min_length=1, description="Who decided (recorded in the ledger)")
    digests: list[str] | None = Field(None, description="If given, must equal the digests of the steps asked about")
    comment: str | None = None


def approval_request(incident_id: str, plan: Plan, asked: list[ReviewedStep], error: str | None) -> dict[str, Any]:
    """The interrupt payload: what is asked, of which exact steps, and which answers are valid."""
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
        "allowed_decisions": ["approve", "reject"],
        "answer_format": {"decision": "approve | reject", "by": "your name", "digests": [r.digest for r in asked]},
        "plan_backend": plan.backend,
        "untrusted_input": plan.informed_by_untrusted_text,
        "warning": (
            f"This plan was written by {plan.backend} after it read untrusted text (tool output, logs). "
            "Text in logs can try to steer a model: check each step yourself."
            if plan.informed_by_untrusted_text
            else None
        ),
        "error": error,
    }


def _read_answer(raw: object, asked: list[ReviewedStep]) -> OperatorAnswer | str:
    """Parse a resume value; a string is the reason it was not acceptable."""
    try:
        answer = OperatorAnswer.model_validate(raw)
    except ValidationError as error:
        return f"answer not understood: {error.errors(include_url=False)}"
    if answer.digests is not None and sorted(answer.digests) != sorted(r.digest for r in asked):
        return "the answer's digests do not match the steps asked about: the plan you saw is not this one"
    return answer


def approval(state: IncidentState, runtime: Runtime[Context]) -> Command[Literal["executor", "report"]]:
    ctx = context_of(runtime.context)
    incident_id = state["incident_id"]
    plan = Plan.model_validate(state["plan"])
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

    ctx.ledger.set_status(incident_id, "awaiting_approval")
    error: str | None = None
    while True:  # each unacceptable answer asks again; LangGraph matches answers by order
        parsed = _read_answer(interrupt(approval_request(incident_id, plan, asked, error)), asked)
        if isinstance(parsed, OperatorAnswer):
            break
        error = parsed

    decided = Approval(
        decision=parsed.decision,
        by=parsed.by,
        digests=[r.digest for r in asked],
        comment=parsed.comment,
        at=time.time(),
    )
    for step in asked:
        ctx.ledger.record_approval(incident_id, state["plan_no"], step, decided)
    ctx.ledger.set_status(incident_id, "open")
    if parsed.decision == "reject":
        detail = f"{parsed.by} rejected the plan: {parsed.comment or 'no comment'}"
        return Command(goto="report", update=conclude("rejected", detail, "approval", decided.at))
    note = event("approval", f"approved by {parsed.by}: " + ", ".join(r.step.tool for r in asked), decided.at)
    return Command(goto="executor", update={"timeline": [note]})
