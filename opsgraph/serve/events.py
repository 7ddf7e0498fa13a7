"""An incident's notification events, derived from its ledger rows (see `opsgraph.serve.notify`).

Pure functions of the rows: which events happened (opened, a wait for approval, its answer, how it
closed) and when, so the notifier can tell what is due without keeping state of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opsgraph.graph.ledger import OPEN_STATUSES

# Closing statuses by the event they make (see notify's module doc); any other closing is `escalated`.
_RESOLVED = frozenset({"resolved"})
_CLOSED = frozenset({"rejected", "paused", "abandoned"})


@dataclass(frozen=True)
class Event:
    """Something that happened to an incident, as the ledger shows it (see the module doc)."""

    incident_id: str
    name: str  # opened, awaiting_approval:K, answered:K, resolved, escalated, closed
    kind: str  # the name without its ordinal
    at: float
    wait: int | None = None  # K of awaiting_approval:K and answered:K
    decision: str | None = None  # of answered:K
    by: str | None = None  # of answered:K


@dataclass(frozen=True)
class Answer:
    plan_no: int
    decision: str
    by: str
    at: float


def answers_of(approvals: Iterable[dict[str, Any]]) -> list[Answer]:
    """One answer per plan asked (an answer writes a row per step asked), oldest first."""
    found: dict[int, Answer] = {}
    for row in sorted(approvals, key=lambda row: row["decided_at"]):
        found.setdefault(row["plan_no"], Answer(row["plan_no"], row["decision"], row["decided_by"], row["decided_at"]))
    return list(found.values())


def closing_event(status: str) -> str:
    if status in _RESOLVED:
        return "resolved"
    if status in _CLOSED:
        return "closed"
    return "escalated"  # escalated, data_safety_failure (or released since), and anything unknown


def incident_events(row: dict[str, Any], answers: list[Answer], read_at: float, settle_s: float) -> list[Event]:
    """Every event of one incident, in the order they happened; `read_at` is when `row` was read."""
    incident_id = row["incident_id"]
    events = [Event(incident_id, "opened", "opened", row["opened_at"])]
    for wait_no, answer in enumerate(answers, start=1):
        events.append(
            Event(incident_id, f"answered:{wait_no}", "answered", answer.at, wait_no, answer.decision, answer.by)
        )
    status = row["status"]
    if status == "awaiting_approval":
        since = answers[-1].at if answers else row["opened_at"]  # the wait began after this
        if not answers or read_at - since >= settle_s:
            wait_no = len(answers) + 1
            events.append(Event(incident_id, f"awaiting_approval:{wait_no}", "awaiting_approval", since, wait_no))
    elif status not in OPEN_STATUSES:
        kind = closing_event(status)
        events.append(Event(incident_id, kind, kind, row["closed_at"] or row["opened_at"]))
    return events
