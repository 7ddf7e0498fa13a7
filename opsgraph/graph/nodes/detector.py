"""Detector node: probe the resource in scope and open an incident if it is unhealthy.

Deterministic (thresholds, no model). The fingerprint is resource + symptom, so a
second run against the same still-open fault joins nothing new: it ends as a duplicate.
A resource whose data a step changed unexpectedly is held: nothing more is done to it
until a human releases the data-safety failure — or, for a resource OpsGraph held after a
crash loop or a spent action cap, until a human resumes it (`opsgraph resume --resource`).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from opsgraph.agents.records import AlertEvidence, Incident
from opsgraph.graph.context import Context, context_of
from opsgraph.graph.control import Controls
from opsgraph.graph.state import IncidentState, conclude, event
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health


def new_incident_id(resource: str) -> str:
    return f"inc-{time.strftime('%Y%m%d-%H%M%S')}-{resource}-{uuid.uuid4().hex[:6]}"


def _thread_id() -> str | None:
    """The thread this run is checkpointed under: thread id == incident id on every path, so a
    thread started without an `incident_id` (Studio, the SDK) is found by the id the ledger shows."""
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # called outside a graph run (no config to read)
        return None
    return str(thread) if thread else None


def fingerprint(resource: str, symptom: str) -> str:
    return f"{resource}:{symptom}"


def detector(state: IncidentState, runtime: Runtime[Context]) -> Command[Literal["diagnostician", "__end__"]]:
    ctx = context_of(runtime.context)
    if "resource" not in state:
        raise ValueError("the incident input needs 'resource': the name of an inventory resource")
    resource = ctx.inventory.get(state["resource"])
    snapshot = probe(resource)
    now = time.time()
    if snapshot.health is Health.HEALTHY:
        update = conclude("healthy", f"{resource.name} is healthy; nothing to do", "detector", now)
        return Command(goto="__end__", update={**update, "snapshot_before": snapshot.model_dump(mode="json")})
    assert snapshot.symptom is not None  # every unhealthy grade names its symptom
    if (holder := ctx.ledger.held_by(resource.name)) is not None:
        detail = (
            f"{resource.name} is {snapshot.health} ({snapshot.symptom}), but incident {holder} changed its data "
            f"unexpectedly: OpsGraph takes no action on it until a human runs `opsgraph incidents release {holder}`"
        )
        return Command(goto="__end__", update=conclude("held", detail, "detector", now))
    stop = Controls(ctx.ledger).stop_for(resource.name)
    if stop is not None and stop.state == "held":  # a pause lets diagnosis go on; the executor refuses its steps
        detail = f"{resource.name} is {snapshot.health} ({snapshot.symptom}) after escalation {stop.incident_id}: "
        return Command(goto="__end__", update=conclude("held", detail + stop.describe(), "detector", now))
    alert = AlertEvidence.model_validate(state["alert"]) if state.get("alert") else None
    incident_id = state.get("incident_id") or _thread_id() or new_incident_id(resource.name)
    incident_fingerprint = fingerprint(resource.name, snapshot.symptom)
    duplicate_of = ctx.ledger.open_incident_for(incident_fingerprint)
    if duplicate_of is not None and duplicate_of != incident_id:
        detail = f"incident {duplicate_of} is already open for {incident_fingerprint}"
        return Command(goto="__end__", update=conclude("duplicate", detail, "detector", now))
    incident = Incident(
        incident_id=incident_id,
        resource=resource.name,
        kind=resource.kind,
        symptom=snapshot.symptom,
        fingerprint=incident_fingerprint,
        severity=snapshot.health,
        fault_started_at=state.get("fault_started_at", snapshot.taken_at),
        detected_at=now,
        alert=alert,
    )
    seen = [event("detector", f"{snapshot.health}: {'; '.join(snapshot.reasons)}", now)]
    if alert is not None:
        seen.insert(0, event("detector", f"alert {alert.name} from {alert.source}; probed {resource.name}", now))
    ctx.ledger.open_incident(incident)
    return Command(
        goto="diagnostician",
        update={
            "incident_id": incident_id,
            "incident": incident.model_dump(mode="json"),
            "snapshot_before": snapshot.model_dump(mode="json"),
            "attempt": 0,
            "plan_no": 0,
            "timeline": seen,
        },
    )
