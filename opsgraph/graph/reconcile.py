"""Make the ledger and the checkpoints agree again after a crash, so no incident is stuck for ever.

The ledger says what was done to real infrastructure and which incidents are open; the
checkpoints say where each incident's graph is. A kill -9 can land between the two. On
start (`watch`, `fix`) and on demand (`opsgraph incidents repair`) every open incident
that no live process is driving is looked at:

- steps left in doubt (an intent, no result, its worker dead) are settled by looking at
  the target (`exactly_once.settle`) and recorded as done or not done;
- a graph paused at an approval is `awaiting_approval` in the ledger, whatever it said;
- a graph stopped between nodes is unfinished: the caller runs it on from its checkpoint;
- a graph that never checkpointed any progress closes its ledger incident as `abandoned`,
  with why — a later probe opens a fresh incident if the fault is still there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from opsgraph.graph.context import Context
from opsgraph.graph.exactly_once import settle
from opsgraph.graph.ledger import OPEN_STATUSES
from opsgraph.graph.runtime import IncidentGraph, is_unfinished, thread_state

ABANDONED = "abandoned"


@dataclass(frozen=True)
class Repair:
    """One thing the reconciler found and did, for the operator to read."""

    incident_id: str
    action: str  # settled, awaiting, unfinished, abandoned
    detail: str


def settle_in_doubt(context: Context) -> list[Repair]:
    """Settle every step whose worker died between its intent and its result."""
    repairs = []
    for intent in context.ledger.in_doubt():
        if intent.owner_alive:
            continue  # running now, in some live process: its own result will come
        record = settle(context.ledger, intent, context.tools)
        repairs.append(Repair(intent.incident_id, "settled", f"{intent.tool} {record.status}: {record.output}"))
    return repairs


def reconcile(graph: IncidentGraph, context: Context) -> tuple[list[Repair], list[str]]:
    """Repair the bookkeeping of every open incident nobody drives; return what was done and the
    incidents left unfinished mid-graph, which the caller runs on (`continue_incident`)."""
    ledger = context.ledger
    repairs = settle_in_doubt(context)
    unfinished: list[str] = []
    for status in OPEN_STATUSES:
        for incident_id in ledger.ids_with_status(status):
            if not ledger.ran_here(incident_id) or ledger.run_holder(incident_id) is not None:
                continue  # run by a LangGraph server (its own checkpoints), or a live process is on it
            state = thread_state(graph, incident_id)
            if state.interrupts:
                if status != "awaiting_approval":
                    ledger.set_status(incident_id, "awaiting_approval")
                    repairs.append(Repair(incident_id, "awaiting", "waits for an approval (the ledger said open)"))
            elif is_unfinished(graph, incident_id):
                unfinished.append(incident_id)
                repairs.append(Repair(incident_id, "unfinished", f"stopped before {', '.join(state.next)}"))
            else:  # no checkpoint past the start (the report node closes the ledger before its own checkpoint)
                detail = (
                    "its run was killed before its graph checkpointed any progress; "
                    "a new incident opens if the fault is still there"
                )
                ledger.close_incident(
                    incident_id, ABANDONED, {"outcome": ABANDONED, "outcome_detail": detail, "closed_at": time.time()}
                )
                repairs.append(Repair(incident_id, ABANDONED, detail))
    return repairs, unfinished
