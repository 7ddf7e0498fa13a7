"""What each notification channel is sent: a Slack-compatible webhook message, a PagerDuty Events v2 event.

Message building only: which events a channel wants and the JSON body for each. Delivery, retries
and the record in the ledger are the notifier's (`opsgraph.serve.notify`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from opsgraph.serve.events import Event

SLACK = "slack"
PAGERDUTY = "pagerduty"
# Answers after which the incident runs on (a rejection closes it: `closed` resolves the page).
_RUNS_ON = frozenset({"approve", "revise"})


@dataclass(frozen=True)
class Facts:
    """What a message says about its incident: the ledger's row, the report once closed, and the links."""

    row: dict[str, Any]
    report: dict[str, Any] | None
    public_url: str | None
    chat_url: str | None

    @property
    def incident_id(self) -> str:
        return str(self.row["incident_id"])

    @property
    def incident_api(self) -> str | None:
        return f"{self.public_url}/api/incidents/{self.incident_id}" if self.public_url else None

    @property
    def approval_api(self) -> str | None:
        return f"{self.public_url}/api/approvals/{self.incident_id}" if self.public_url else None

    @property
    def cli(self) -> str:
        return f"opsgraph approve {self.incident_id}"

    @property
    def status(self) -> str:
        return str(self.row["status"])

    @property
    def detail(self) -> str:
        return str((self.report or {}).get("outcome_detail") or "")

    def subject(self) -> str:
        return f"incident {self.incident_id} ({self.row['resource']}, {self.row['symptom']})"

    def headline(self, event: Event) -> str:
        """One sentence naming the incident, its resource and symptom, and the event."""
        if event.kind == "opened":
            return f"OpsGraph opened incident {self.incident_id}: {self.row['resource']} has {self.row['symptom']}"
        if event.kind == "awaiting_approval":
            again = f" (approval request {event.wait})" if event.wait and event.wait > 1 else ""
            return f"OpsGraph {self.subject()} is awaiting approval{again}: its plan waits for a human"
        if event.kind == "resolved":
            return f"OpsGraph {self.subject()} is resolved"
        if event.kind == "escalated":
            if self.status.startswith("data_safety"):
                return f"OpsGraph {self.subject()}: DATA SAFETY FAILURE, escalated, a human must look now"
            return f"OpsGraph {self.subject()} is escalated ({self.status}): a human must act"
        return f"OpsGraph {self.subject()} is closed as {self.status}"

    def outcome_lines(self) -> list[str]:
        """What the report says of how it ended (closings only)."""
        report = self.report or {}
        lines = [self.detail] if self.detail else []
        if report.get("root_cause"):
            lines.append(f"Root cause: {report['root_cause']}")
        actions = [f"{a['tool']} {a['status']}" for a in report.get("actions") or []]
        if actions:
            lines.append(f"Actions: {', '.join(actions)}")
        figures = [
            f"{name} {report[key]} s" for name, key in (("MTTD", "mttd_s"), ("MTTR", "mttr_s")) if report.get(key)
        ]
        if figures:
            lines.append("   ".join(figures))
        return lines

    def approval_lines(self) -> list[str]:
        """Where the wait is answered: the chat, the API, the CLI; and where the incident is read."""
        lines = []
        if self.chat_url:
            lines.append(f"Chat: {self.chat_url}")
        if self.approval_api:
            lines.append(f"API: POST {self.approval_api}")
        lines.append(f"CLI: {self.cli}")
        if self.incident_api:
            lines.append(f"Incident: {self.incident_api}")
        return lines


class Channel(Protocol):
    """One receiver: which events it wants and the JSON body it is sent for each."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    def wants(self, event: Event, sent: set[str]) -> bool:
        """Whether `event` is for this channel, given the events already sent (or queued) to it."""
        ...

    def body(self, event: Event, facts: Facts) -> dict[str, Any]:
        """What is said: text only, redacted by the caller before `seal`."""
        ...

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as sent: `body` with the channel's credentials, if they travel in it."""
        ...


@dataclass(frozen=True)
class SlackChannel:
    """A Slack (or compatible) incoming webhook: `{"text", "blocks"}`; the URL itself is the secret."""

    url: str
    name: str = SLACK

    def wants(self, event: Event, sent: set[str]) -> bool:
        return event.kind != "answered"

    def body(self, event: Event, facts: Facts) -> dict[str, Any]:
        headline = facts.headline(event)
        lines = []
        if event.kind in ("resolved", "escalated", "closed"):
            lines = facts.outcome_lines()
        elif event.kind == "awaiting_approval":
            lines = ["Approve or reject it:", *facts.approval_lines()]
        elif facts.incident_api:
            lines = [f"Incident: {facts.incident_api}"]
        text = "\n".join([headline, *lines])
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(f"*{_mrkdwn(headline)}*", 3000)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(str(value))}"}
                    for label, value in (
                        ("Incident", facts.incident_id),
                        ("Resource", facts.row["resource"]),
                        ("Symptom", facts.row["symptom"]),
                        ("Event", event.name),
                    )
                ],
            },
        ]
        if lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(_mrkdwn("\n".join(lines)), 3000)}})
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": href}
            for label, href in (("Open the chat", facts.chat_url), ("Incident record", facts.incident_api))
            if href and event.kind == "awaiting_approval"
        ]
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        stamp = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"OpsGraph · {event.name} · {stamp}"}]}
        )
        return {"text": cut(text, 3000), "blocks": blocks}

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        return body  # the URL is the credential


@dataclass(frozen=True)
class PagerDutyChannel:
    """PagerDuty Events API v2: trigger, acknowledge, resolve, with the incident id as the dedup key."""

    url: str
    routing_key: str = dataclasses.field(repr=False)
    name: str = PAGERDUTY

    def action(self, event: Event) -> str | None:
        if event.kind in ("awaiting_approval", "escalated"):
            return "trigger"
        if event.kind == "answered":
            return "acknowledge" if event.decision in _RUNS_ON else None
        if event.kind in ("resolved", "closed"):
            return "resolve"
        return None

    def wants(self, event: Event, sent: set[str]) -> bool:
        action = self.action(event)
        if action == "acknowledge":  # only the page this very wait raised
            return f"awaiting_approval:{event.wait}" in sent
        if action == "resolve":  # only a page that was raised
            return any(name.startswith("awaiting_approval:") or name == "escalated" for name in sent)
        return action == "trigger"

    def body(self, event: Event, facts: Facts) -> dict[str, Any]:
        action = self.action(event)
        assert action is not None  # `wants` said yes
        body: dict[str, Any] = {"event_action": action, "dedup_key": facts.incident_id}
        if action == "trigger":
            severity = "warning" if event.kind == "awaiting_approval" else "error"
            if facts.status.startswith("data_safety"):
                severity = "critical"
            details: dict[str, Any] = {
                "incident_id": facts.incident_id,
                "resource": facts.row["resource"],
                "symptom": facts.row["symptom"],
                "status": facts.status,
                "event": event.name,
            }
            if event.kind == "awaiting_approval":
                details["answer_with"] = facts.approval_lines()
            else:
                details["outcome"] = facts.outcome_lines()
            links = [
                {"href": href, "text": text}
                for href, text in ((facts.chat_url, "OpsGraph chat"), (facts.incident_api, "Incident record"))
                if href
            ]
            body |= {
                "payload": {
                    "summary": cut(facts.headline(event), 1024),
                    "source": facts.row["resource"],
                    "severity": severity,
                    "component": facts.row["resource"],
                    "group": "opsgraph",
                    "class": facts.row["symptom"],
                    "custom_details": details,
                },
                "client": "OpsGraph",
                "links": links,
            }
            if facts.public_url:
                body["client_url"] = facts.public_url
        return body

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"routing_key": self.routing_key, **body}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> str:
    """Slack mrkdwn's three escapes (&, <, >), so incident text never turns into a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
