"""Report node: write the incident record to the ledger and close the incident."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.graph.context import Context, context_of
from opsgraph.graph.control import Controls
from opsgraph.graph.report import build_report
from opsgraph.graph.state import IncidentState, event


def reporter(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime.context)
    incident_id = state["incident_id"]
    closing = event("report", f"closed as {state.get('outcome')}", time.time())
    report = build_report(
        {**state, "timeline": [*state.get("timeline", []), closing]}, ctx.ledger.approvals(incident_id)
    )
    # Dependents watch grouped under this incident instead of opening their own (their fault is this one).
    report["grouped_dependents"] = Controls(ctx.ledger).grouped_under(incident_id)
    ctx.ledger.close_incident(incident_id, str(state.get("outcome")), report)
    return {"report": report, "timeline": [closing]}
