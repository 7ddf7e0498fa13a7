"""Diagnostician node: the reasoning backend gathers read-only evidence and names a root cause."""

from __future__ import annotations

import time
from typing import Any

from langgraph.runtime import Runtime

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.agents.records import Incident
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.state import IncidentState, event, reasoning_entry
from opsgraph.tools.snapshot import Snapshot


def latest_snapshot(state: IncidentState) -> Snapshot:
    """The newest view of the resource: the verifier's after a failed fix, else the detector's."""
    if "verification" in state:
        return Snapshot.model_validate(state["verification"]["snapshot"])
    return Snapshot.model_validate(state["snapshot_before"])


def diagnostician(state: IncidentState, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = context_of(runtime.context)
    incident = Incident.model_validate(state["incident"])
    reasoner = ctx.reasoning_backend("diagnostician")
    read = ReadOnlyTools(ctx.tools, ctx.tool_timeout_s)
    diagnosis = reasoner.diagnose(incident, latest_snapshot(state), read, state.get("feedback"))
    now = time.time()
    return {
        "diagnosis": diagnosis.model_dump(mode="json"),
        "reasoning_log": [reasoning_entry("diagnostician", diagnosis.backend, diagnosis.tokens, diagnosis.fallback)],
        "timeline": [
            *read.timeline("diagnostician", now),
            event("diagnostician", f"[{diagnosis.backend}] {diagnosis.root_cause}", now),
        ],
    }
