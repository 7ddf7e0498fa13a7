"""The incident graph's state: one thread per incident, JSON values only.

Records are stored as plain dicts (the `schemas` models dumped to JSON) so that
checkpoints stay readable in LangGraph Studio and through the SDK, and so that
restoring a checkpoint never needs to unpickle our classes. Nodes turn them back
into models with `model_validate` at their boundary.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict


class IncidentInput(TypedDict, total=False):
    """What starts a thread: the resource to look at (from a scan, an alert or Studio)."""

    resource: str
    incident_id: str  # chosen by the caller so that thread id == incident id; generated if absent
    fault_started_at: float  # when the fault began, if the caller knows (an injection, an alert's startsAt)
    alert: dict[str, Any]  # agents.records.AlertEvidence: the alert that asked for this incident, if one did


class IncidentState(IncidentInput, total=False):
    incident: dict[str, Any]  # schemas.Incident
    snapshot_before: dict[str, Any]  # schemas.Snapshot
    diagnosis: dict[str, Any]  # schemas.Diagnosis
    plan: dict[str, Any]  # schemas.Plan
    plan_no: int
    reviewed: list[dict[str, Any]]  # schemas.ReviewedStep, replaced for each plan
    # The approval request of the current plan: {"plan_no", "asked_at", "error"}. Kept in the
    # state so that asked_at stays the same when LangGraph re-runs the approval node on resume.
    approval_request: dict[str, Any]
    # An operator's change to the plan, asked at its approval (agents.records.PlanRevision with no
    # note yet): the planner answers it with a revised plan and clears it, so it is used once.
    operator_change: dict[str, Any] | None
    revisions: int  # how many times this incident's plan was sent back with a change
    actions: Annotated[list[dict[str, Any]], operator.add]  # schemas.ActionRecord, append-only
    verification: dict[str, Any]  # schemas.Verification
    attempt: int
    feedback: str | None
    # The step digests of every plan that ran and did not fix the incident, append-only:
    # the planner never runs one of them again.
    failed_plans: Annotated[list[list[str]], operator.add]
    timeline: Annotated[list[dict[str, Any]], operator.add]  # {"at", "node", "event"}, append-only
    # One entry per reasoning call: {"node", "backend", "tokens", "fallback"}, append-only.
    reasoning_log: Annotated[list[dict[str, Any]], operator.add]
    outcome: str  # healthy | duplicate | held | resolved | escalated | rejected | data_safety_failure
    outcome_detail: str
    report: dict[str, Any]


def event(node: str, text: str, at: float) -> dict[str, Any]:
    """One timeline entry."""
    return {"at": at, "node": node, "event": text}


def conclude(outcome: str, detail: str, node: str, at: float) -> dict[str, Any]:
    """The state update that settles an incident's outcome (the report node writes it up)."""
    return {"outcome": outcome, "outcome_detail": detail, "timeline": [event(node, f"{outcome}: {detail}", at)]}


def reasoning_entry(node: str, backend: str, tokens: dict[str, int], fallback: str | None) -> dict[str, Any]:
    return {"node": node, "backend": backend, "tokens": tokens, "fallback": fallback}
