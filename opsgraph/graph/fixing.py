"""Scan the inventory and run one incident graph per unhealthy resource.

Shared by `opsgraph fix`, `opsgraph demo`, the tests and the benchmarks, so they all
exercise the same path. Approvals come from an `Approver` callback: the terminal
prompt, a scripted answer, or nobody (the incident stays paused, checkpointed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsgraph.graph.context import Context
from opsgraph.graph.nodes.detector import new_incident_id
from opsgraph.graph.reconcile import reconcile
from opsgraph.graph.runtime import (
    NodeListener,
    RunResult,
    continue_incident,
    incident_graph,
    resume_incident,
    start_incident,
)
from opsgraph.tools.probes import probe_all
from opsgraph.tools.snapshot import Health

# Given an approval request, return the operator's answer, or None to leave it pending.
Approver = Callable[[dict[str, Any]], dict[str, Any] | None]


def fix_all(
    context: Context,
    approver: Approver,
    on_node: NodeListener | None = None,
    fault_started_at: float | None = None,
) -> list[RunResult]:
    """One graph run per unhealthy resource; each run ends, or pauses when nobody answers.

    What a killed process left is finished first (`reconcile`): an incident stopped mid-graph
    runs on from its checkpoint rather than blocking its fault's fingerprint for ever.
    """
    results = []
    with incident_graph(Path(context.state_dir)) as graph:

        def answered(result: RunResult) -> RunResult:
            while result.pending is not None and (answer := approver(result.pending)) is not None:
                result = resume_incident(graph, context, result.incident_id, answer, on_node)
            return result

        _repairs, unfinished = reconcile(graph, context)
        for incident_id in unfinished:
            results.append(answered(continue_incident(graph, context, incident_id, on_node)))
        for snapshot in probe_all(context.inventory):
            if snapshot.health is Health.HEALTHY:
                continue
            incident_id = new_incident_id(snapshot.resource)
            started = start_incident(graph, context, snapshot.resource, incident_id, fault_started_at, on_node)
            results.append(answered(started))
    return results


def summary(result: RunResult) -> dict[str, Any]:
    """The scriptable one-line record of an incident run (the `--json` contract)."""
    if result.report is not None:
        return {key: value for key, value in result.report.items() if key != "timeline"}
    values = result.values
    return {
        "incident_id": result.incident_id,
        "resource": values.get("resource"),
        "resolved": False,
        "outcome": "awaiting_approval" if result.pending is not None else values.get("outcome"),
        "outcome_detail": values.get("outcome_detail"),
        "mttd_s": None,
        "mttr_s": None,
        "root_cause": (values.get("diagnosis") or {}).get("root_cause"),
        "actions": [{"tool": a["tool"], "args": a["args"], "status": a["status"]} for a in values.get("actions", [])],
        "pending_approval": result.pending,
    }
