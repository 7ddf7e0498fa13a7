"""Alerts in: Alertmanager's webhook (format version 4) and a generic webhook, to incidents.

A payload is validated whole before anything is recorded, so a malformed one gets a 4xx that
names the field and leaves the ledger as it was. Each alert of a valid payload is then recorded
in the ledger's `alerts` table with what was done about it:

- `started`: a firing alert mapped to a resource (the inventory's `alert_routes`, else its
  `resource` label) starts the incident graph with the alert as evidence. The detector still
  probes the resource first: an alert asks OpsGraph to look, it never orders an action.
- `deduplicated`: the same alert (same sender and fingerprint) has an incident open or a run in
  flight — Alertmanager repeats notifications, and each repeat lands here, not in a new incident.
- `cooldown`: that alert's last incident closed (or its run ended) less than the cooldown ago.
- `attached`: another incident is already open or running on the resource; it carries on.
- `unrouted`: no resource could be named; the reason is recorded.
- `resolved`: a resolved alert is recorded and closes nothing: only OpsGraph's own verification
  closes an incident.

Look-up and record happen in one write transaction, so two deliveries of the same alert at once
open one incident.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opsgraph.agents.records import AlertEvidence
from opsgraph.graph.context import Context
from opsgraph.graph.ledger import OPEN_STATUSES, AlertBook
from opsgraph.graph.nodes.detector import new_incident_id
from opsgraph.graph.runtime import RunResult
from opsgraph.graph.watch import Say, Watcher

# Alertmanager writes this for "no end yet".
_NO_TIME = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LabelValue = Annotated[str, StringConstraints(max_length=2000)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
# An alert whose incident could not be started (the watcher is not running): the API answers 503 so
# that the sender retries, and the retry is judged afresh (no dedupe or cooldown against this row).
NOT_STARTED = "not_started"
MAX_ALERTS = 500  # per payload: Alertmanager batches a group's alerts, this bounds one request's work


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)  # senders add fields over versions


class AlertmanagerAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[Label, LabelValue] = Field(description="Must hold `alertname`.")
    annotations: dict[Label, Text] = {}
    startsAt: datetime  # Alertmanager's field names, as it sends them
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=200)]

    def evidence(self) -> AlertEvidence:
        return AlertEvidence(
            source="alertmanager",
            name=self.labels.get("alertname", "unnamed"),
            fingerprint=self.fingerprint,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_at=None if self.startsAt <= _NO_TIME else self.startsAt.timestamp(),
        )


class AlertmanagerPayload(_Payload):
    """Alertmanager's webhook body (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    version: Literal["4"]
    groupKey: str | None = None
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str | None = None
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str | None = None
    alerts: Annotated[list[AlertmanagerAlert], Field(min_length=1, max_length=MAX_ALERTS)]


class WebhookAlert(_Payload):
    name: Label
    status: Literal["firing", "resolved"] = "firing"
    resource: Label | None = Field(None, description="The inventory resource, when the sender knows it.")
    labels: dict[Label, LabelValue] = {}
    annotations: dict[Label, Text] = {}
    fingerprint: Label | None = Field(None, description="The alert's identity across repeats; default: name+labels.")
    starts_at: datetime | None = None


class WebhookPayload(_Payload):
    """Any other sender: `{"source": "grafana", "alerts": [{"name": ..., "labels": {...}}]}`."""

    source: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    alerts: Annotated[list[WebhookAlert], Field(min_length=1, max_length=MAX_ALERTS)]

    def evidence(self) -> list[tuple[str, AlertEvidence]]:
        found: list[tuple[str, AlertEvidence]] = []
        for alert in self.alerts:
            labels = dict(alert.labels)
            if alert.resource is not None:
                labels.setdefault("resource", alert.resource)
            identity = alert.fingerprint or _fingerprint(alert.name, labels)
            evidence = AlertEvidence(
                source=f"webhook:{self.source}",
                name=alert.name,
                fingerprint=identity,
                labels=labels,
                annotations=dict(alert.annotations),
                starts_at=alert.starts_at.timestamp() if alert.starts_at else None,
            )
            found.append((alert.status, evidence))
        return found


def _fingerprint(name: str, labels: dict[str, str]) -> str:
    """A stable identity for an alert whose sender gives none: its name and labels."""
    return hashlib.sha256(json.dumps([name, sorted(labels.items())]).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Receipt:
    """What was done about one alert (the API's answer, one per alert)."""

    name: str
    fingerprint: str
    status: str
    resource: str | None
    outcome: str
    incident_id: str | None
    detail: str


class AlertIntake:
    """Turns validated alerts into ledger rows and, where due, incident runs on the watcher."""

    def __init__(
        self,
        context: Context,
        watcher: Watcher,
        cooldown_s: float,
        say: Say,
    ) -> None:
        self._context = context
        self._watcher = watcher
        self._cooldown_s = cooldown_s
        self._say = say

    def receive(self, alerts: list[tuple[str, AlertEvidence]]) -> list[Receipt]:
        return [self._one(status, evidence) for status, evidence in alerts]

    def _one(self, status: str, alert: AlertEvidence) -> Receipt:
        resource, how = self._context.inventory.resource_for_alert(alert.labels)
        ledger = self._context.ledger
        start: tuple[int, str] | None = None
        with ledger.alert_intake() as book:
            outcome, incident_id, detail = self._decide(book, status, alert, resource, how)
            if outcome == "started":
                assert resource is not None
                incident_id = new_incident_id(resource)
                already = self._watcher.reserve(resource, incident_id)
                if already is not None:
                    outcome, incident_id, detail = "attached", already, f"incident {already} is running on {resource}"
            alert_no = book.record(
                source=alert.source,
                fingerprint=alert.fingerprint,
                name=alert.name,
                status=status,
                resource=resource,
                outcome=outcome,
                detail=detail,
                incident_id=incident_id,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=alert.starts_at,
            )
            if outcome == "started":
                assert incident_id is not None
                start = (alert_no, incident_id)
        if start is not None:
            assert resource is not None
            problem = self._launch(start, resource, alert)
            if problem is not None:  # recorded as not started: the sender's retry starts afresh
                outcome, detail = NOT_STARTED, problem
        else:
            level = "warning" if outcome == "unrouted" else "info"
            self._say(f"alert {alert.name} ({alert.source}, {status}): {outcome}: {detail}", level,
                      resource=resource, incident_id=incident_id, alert=alert.fingerprint)  # fmt: skip
        return Receipt(alert.name, alert.fingerprint, status, resource, outcome, incident_id, detail)

    def _decide(
        self, book: AlertBook, status: str, alert: AlertEvidence, resource: str | None, how: str
    ) -> tuple[str, str | None, str]:
        """(outcome, incident id, why) for one alert, before anything is started."""
        last = book.last_started(alert.source, alert.fingerprint)
        if status == "resolved":
            joined = last["incident_id"] if last else None
            return "resolved", joined, "recorded; a resolved alert closes nothing (OpsGraph's verification does)"
        if resource is None:
            return "unrouted", None, f"no inventory resource: {how}"
        if last is not None:
            incident_id = last["incident_id"]
            if last["incident_status"] in OPEN_STATUSES:
                return "deduplicated", incident_id, f"incident {incident_id} is open for this alert"
            if self._watcher.is_running(incident_id):
                return "deduplicated", incident_id, f"incident {incident_id} for this alert is running"
            ended_at = last["incident_closed_at"] or last["received_at"]
            if (left := self._cooldown_s - (time.time() - ended_at)) > 0:
                return "cooldown", incident_id, f"its last incident {incident_id} ended; {left:.0f} s of cooldown left"
        if (open_id := book.open_incident_on(resource)) is not None:
            return "attached", open_id, f"incident {open_id} is open on {resource}"
        return "started", None, f"mapped to {resource} by {how}"

    def _launch(self, start: tuple[int, str], resource: str, alert: AlertEvidence) -> str | None:
        """Start the alert's incident on the watcher; why it could not be started, if it could not."""
        alert_no, incident_id = start
        ledger = self._context.ledger

        def settled(result: RunResult | None) -> None:
            if result is None:
                ledger.settle_alert(alert_no, "ran", "the run did not finish here (busy elsewhere or crashed)")
                return
            values = result.values
            outcome = "awaiting_approval" if result.pending is not None else values.get("outcome", "unknown")
            ledger.settle_alert(alert_no, "ran", f"{outcome}: {values.get('outcome_detail') or ''}".rstrip(": "))

        self._say(f"alert {alert.name} ({alert.source}): {resource} -> {incident_id}", "warning",
                  resource=resource, incident_id=incident_id, alert=alert.fingerprint)  # fmt: skip
        try:
            # The sender's clock may run ahead of ours: a fault never starts after it was reported.
            fault_started_at = min(alert.starts_at or time.time(), time.time())
            self._watcher.start_alerted(resource, incident_id, alert.model_dump(mode="json"), fault_started_at, settled)
        except RuntimeError as error:
            problem = f"not started: {error}"
            ledger.settle_alert(alert_no, NOT_STARTED, problem)
            self._say(f"alert {alert.name} ({alert.source}): {problem}", "error", resource=resource,
                      alert=alert.fingerprint)  # fmt: skip
            return problem
        return None
