"""Markdown for the chat: health, incidents, an approval request, each node's progress, outcomes.

Pure functions of records, so the browser shows exactly what the ledger and the graph hold.
Everything passes `redact_value` first: tool output and logs can carry a password, and the
browser is as untrusted a place for it as a prompt or a log line.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opsgraph.chat.service import Pending
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.snapshot import Health, Snapshot

# Marks from the fonts every desktop has (DejaVu): colour emoji are boxes on many servers' browsers.
_HEALTH_MARK = {Health.HEALTHY: "✔", Health.DEGRADED: "⚠", Health.FAILED: "✖"}
_OUTPUT_CHARS = 1500  # a tool's output beyond this is cut in the step view (the ledger keeps it whole)


def _code(value: Any) -> str:
    text = json.dumps(redact_value(value), indent=2, default=str, sort_keys=True)
    if len(text) > _OUTPUT_CHARS:
        text = text[:_OUTPUT_CHARS] + "\n… (cut; `opsgraph incidents show` has it all)"
    return f"```json\n{text}\n```"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "—"


def health(snapshots: list[Snapshot]) -> str:
    lines = []
    for s in snapshots:
        why = f" — {'; '.join(s.reasons)}" if s.reasons and s.health is not Health.HEALTHY else ""
        lines.append(f"- {_HEALTH_MARK[s.health]} **{s.resource}** ({s.kind}): {s.health}{why}")
    return "\n".join(redact_value(lines)) or "- the inventory lists no resources"


def incidents(rows: list[dict[str, Any]], title: str) -> str:
    rows = redact_value(rows)
    if not rows:
        return f"**{title}:** none"
    lines = [f"**{title}:**"]
    lines += [
        f"- `{r['incident_id']}` {r['status']} — {r['resource']} {r['symptom']} (opened {_when(r['opened_at'])})"
        for r in rows
    ]
    return "\n".join(lines)


def summary(snapshots: list[Snapshot], open_rows: list[dict[str, Any]], pending: list[Pending]) -> str:
    """The greeting: every resource's health, the incidents still open and the approvals waiting."""
    waiting = f"**{len(pending)} approval(s) waiting** — below." if pending else "No approval is waiting."
    return "\n\n".join(["### Health now", health(snapshots), incidents(open_rows, "Open incidents"), waiting])


def plan(pending: Pending, backend_note: str = "") -> str:
    """An approval request in full: each step's tool, exact arguments, risk, why, effect, undo; the warning."""
    request = redact_value(pending.request)
    where = f" (paused on {pending.server})" if pending.server else ""
    lines = [f"### Approval needed: `{pending.incident_id}`{where}", request["question"]]
    if request.get("warning"):
        lines.append(f"> ⚠ **{request['warning']}**")
    revision = request.get("revision")
    if revision and revision.get("unchanged"):
        lines.append(f"> ✖ Your change (*{revision['change']}*) was not applied: {revision['note']}")
    elif request.get("error"):
        lines.append(f"> ✖ The last answer was not accepted: {request['error']}")
    if revision and not revision.get("unchanged"):
        lines.append(f"> Revised plan: {revision['by']} asked *{revision['change']}* of plan {revision['of_plan']}.")
    for step in request["steps"]:
        lines += [
            f"#### Step {step['index']}: `{step['tool']}` — risk **{step['risk']}**",
            f"```json\n{json.dumps(step['args'], sort_keys=True)}\n```",
            f"- **Why:** {step['rationale']}",
            f"- **Expected effect:** {step['expected_effect']}",
            f"- **Undo:** {step['undo'] or 'none given'}",
            f"- **Asked because:** {step['why_asked']}",
            f"- digest `{step['digest']}`",
        ]
    lines.append(
        f"Planned by {request.get('plan_backend')}; the request stands until {_when(request.get('expires_at'))}."
        " Approve or Reject below, ask a question, or type a change (e.g. *only 128 MB*)."
        + (f" {backend_note}" if backend_note else "")
    )
    return "\n\n".join(lines)


def _diagnosis(diagnosis: dict[str, Any]) -> list[str]:
    lines = [
        f"**Root cause** ({diagnosis['backend']}, confidence {diagnosis['confidence']:.0%}): {diagnosis['root_cause']}",
        "**Evidence:**",
        *(f"- {e}" for e in diagnosis["evidence"]),
    ]
    ranked = sorted(diagnosis.get("hypotheses", []), key=lambda h: -h["likelihood"])
    if ranked:
        lines.append("**Hypotheses, most likely first:**")
    for n, h in enumerate(ranked, 1):
        lines.append(f"{n}. {h['cause']} — {h['likelihood']:.0%}")
        lines += [f"   - for: {e}" for e in h["evidence_for"]]
        lines += [f"   - against: {e}" for e in h["evidence_against"]]
    return lines


def _probe(snapshot: dict[str, Any]) -> list[str]:
    """What the probe measured: the verdict, why, and every metric it read."""
    metrics = ", ".join(f"{name} {value}" for name, value in sorted(snapshot.get("metrics", {}).items()))
    return [f"**Probe of {snapshot['resource']}:** {snapshot['health']}", f"metrics: {metrics or 'none'}"]


def _action(action: dict[str, Any]) -> list[str]:
    lines = [f"**`{action['tool']}`** {json.dumps(action['args'], sort_keys=True)} → **{action['status']}**"]
    if action.get("error"):
        lines.append(f"error: {action['error']}")
    if action.get("output") is not None:
        lines.append(_code(action["output"]))
    check = action.get("data_check")
    if check is not None:
        lines.append(f"data survived: **{check.get('survived')}**")
    return lines


def node_step(node: str, update: dict[str, Any]) -> str:
    """What one graph node did, for its `cl.Step`: the timeline, then the node's own record."""
    update = redact_value(update)
    lines = []
    for entry in update.get("timeline", []):
        lines.append(f"- {entry['event']}")
        if entry.get("output"):
            lines.append(f"```json\n{entry['output']}\n```")
    if "snapshot_before" in update:
        lines += _probe(update["snapshot_before"])
    if "diagnosis" in update:
        lines += _diagnosis(update["diagnosis"])
    for reviewed in update.get("reviewed", []):
        step = reviewed["step"]
        verdict = f"{reviewed['verdict']} ({reviewed['risk']}): {reviewed['reason']}"
        lines.append(f"- step {reviewed['index']} `{step['tool']}` {json.dumps(step['args'])}: {verdict}")
    for action in update.get("actions", []):
        lines += _action(action)
    if "verification" in update:
        verification = update["verification"]
        lines.append(
            f"**Verified:** {'healthy' if verification['healthy'] else 'NOT healthy'} — {verification['detail']}"
        )
    return "\n".join(lines) or "(no change)"


def outcome(record: dict[str, Any]) -> str:
    """The end of a run (`opsgraph.graph.fixing.summary`), or why it waits."""
    record = redact_value(record)
    if record["outcome"] == "awaiting_approval":
        return f"`{record['incident_id']}` waits for an approval."
    mark = "✔" if record.get("resolved") else "⚠"
    lines = [f"### {mark} `{record['incident_id']}`: {record['outcome']}"]
    if record.get("outcome_detail"):
        lines.append(str(record["outcome_detail"]))
    if record.get("root_cause"):
        lines.append(f"**Root cause:** {record['root_cause']}")
    for action in record.get("actions", []):
        survived = action.get("data_survived")
        data = "" if survived is None else f", data survived: {survived}"
        lines.append(f"- `{action['tool']}` {json.dumps(action['args'], sort_keys=True)}: {action['status']}{data}")
    if record.get("mttr_s") is not None:
        lines.append(f"Recovered {record['mttr_s']} s after detection (verified after {record['verified_after_s']} s).")
    return "\n\n".join(lines)


def incident(record: dict[str, Any]) -> str:
    """One incident from the ledger: status, report, approvals and actions."""
    record = redact_value(record)
    report = record.get("report") or {}
    lines = [
        f"### `{record['incident_id']}` — {record['status']}",
        f"{record['resource']}: {record['symptom']}, opened {_when(record['opened_at'])},"
        f" closed {_when(record.get('closed_at'))}",
    ]
    if report.get("root_cause"):
        lines.append(f"**Root cause:** {report['root_cause']}")
    if report.get("outcome_detail"):
        lines.append(f"**Outcome:** {report['outcome']} — {report['outcome_detail']}")
    for a in record.get("approvals", []):
        lines.append(
            f"- {a['decision']} `{a['tool']}` {a['args']} by **{a['decided_by']}** at {_when(a['decided_at'])}"
        )
    for a in record.get("actions", []):
        if a["phase"] == "result":
            lines.append(f"- ran `{a['tool']}` {a['args']}: {a['status']} at {_when(a['at'])}")
    return "\n\n".join(lines)


def actions(rows: list[dict[str, Any]], since: float, until: float) -> str:
    rows = redact_value(rows)
    head = f"**What I did between {_when(since)} and {_when(until)}:**"
    if not rows:
        return f"{head} nothing — no step was started."
    return "\n".join([head, *(f"- {_when(r['at'])} `{r['tool']}` {r['args']} ({r['incident_id']})" for r in rows)])


def why(pending: Pending, diagnosis: dict[str, Any] | None) -> str:
    """The answer to "why do you want to …?": the diagnosis behind a waiting plan, then each step's reason."""
    lines = [f"### Why this plan for `{pending.incident_id}`"]
    lines += _diagnosis(redact_value(diagnosis)) if diagnosis else ["(no diagnosis recorded)"]
    for step in redact_value(pending.request)["steps"]:
        lines.append(f"- `{step['tool']}` {json.dumps(step['args'], sort_keys=True)}: {step['rationale']}")
    lines.append("The plan is still waiting for your answer.")
    return "\n\n".join(lines)
