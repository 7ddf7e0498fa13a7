"""The incident record: what happened, what was done, and how fast.

MTTD is fault start (known for injections, else first unhealthy probe) → incident
opened; MTTR is incident opened → first probe of the healthy window that held;
`verified_after_s` adds the settle window (incident opened → recovery confirmed).
"""

from __future__ import annotations

import json
from typing import Any

from opsgraph.agents.records import Diagnosis, Incident
from opsgraph.graph.schemas import ActionRecord, Verification
from opsgraph.graph.state import IncidentState
from opsgraph.tools.snapshot import Snapshot


def _tokens(log: list[dict[str, Any]]) -> dict[str, Any]:
    """Model usage per node and in total (all zero for the rule-based runbook backend)."""
    per_node: dict[str, dict[str, int]] = {}
    for entry in log:
        node = per_node.setdefault(entry["node"], {"input_tokens": 0, "output_tokens": 0})
        for key in node:
            node[key] += int(entry.get("tokens", {}).get(key, 0))
    total = {key: sum(node[key] for node in per_node.values()) for key in ("input_tokens", "output_tokens")}
    return {**total, "by_node": per_node}


def build_report(state: IncidentState, approvals: list[dict[str, Any]]) -> dict[str, Any]:
    incident = Incident.model_validate(state["incident"])
    before = Snapshot.model_validate(state["snapshot_before"])
    verification = Verification.model_validate(state["verification"]) if "verification" in state else None
    diagnosis = Diagnosis.model_validate(state["diagnosis"]) if "diagnosis" in state else None
    actions = [ActionRecord.model_validate(a) for a in state.get("actions", [])]
    resolved = state.get("outcome") == "resolved"
    recovered_at = verification.recovered_at if verification else None
    return {
        "incident_id": incident.incident_id,
        "resource": incident.resource,
        "symptom": incident.symptom,
        "fingerprint": incident.fingerprint,
        "resolved": resolved,
        "outcome": state.get("outcome"),
        "outcome_detail": state.get("outcome_detail"),
        "mttd_s": round(incident.detected_at - incident.fault_started_at, 3),
        "mttr_s": round(recovered_at - incident.detected_at, 3) if resolved and recovered_at else None,
        # MTTR plus the settle window: when OpsGraph was sure, not just when the resource recovered.
        "verified_after_s": round(verification.snapshot.taken_at - incident.detected_at, 3) if verification else None,
        "root_cause": diagnosis.root_cause if diagnosis else None,
        "diagnosis": diagnosis.model_dump(mode="json") if diagnosis else None,
        "actions": [
            {
                "tool": a.tool,
                "args": a.args,
                "status": a.status,
                "error": a.error,
                "data_survived": a.data_check.survived if a.data_check else None,
            }
            for a in actions
        ],
        # Unexpected data changes after a step (empty when every checked step kept the data).
        "data_safety": [f"after {a.tool}: {change}" for a in actions for change in a.data_lost],
        "approvals": [
            {
                "tool": a["tool"],
                "args": json.loads(a["args"]),
                "decision": a["decision"],
                "by": a["decided_by"],
                "comment": a["comment"],  # with revise: the change the operator asked for
                "at": a["decided_at"],
            }
            for a in approvals
        ],
        "attempts": state.get("plan_no", 0),  # plans tried
        "metrics_before": before.metrics,
        "metrics_after": verification.snapshot.metrics if verification else None,
        "reasoning_backend": diagnosis.backend if diagnosis else None,
        "tokens": _tokens(state.get("reasoning_log", [])),
        "fallbacks": [entry["fallback"] for entry in state.get("reasoning_log", []) if entry.get("fallback")],
        # Every reasoning call (node, backend, tokens, fallback): serve's /metrics counts them one by one.
        "reasoning_log": state.get("reasoning_log", []),
        "timeline": state.get("timeline", []),
    }
