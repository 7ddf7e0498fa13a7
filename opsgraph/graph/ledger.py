"""The audit ledger (SQLite): incidents, plans, approvals and actions, append-mostly.

Separate from the LangGraph checkpoints on purpose. Checkpoints say where a graph
is; the ledger says what was done to real infrastructure. The executor claims a step by
writing its `intent` row (one INSERT that only one process can win) and writes a `result`
row after it, keyed by incident + plan + step, so neither a race nor a crash and resume
repeats an action. The `runs` table says which live process drives each incident.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opsgraph.agents.records import Incident, Plan
from opsgraph.graph.owner import Owner
from opsgraph.graph.schemas import ActionRecord, Approval, ReviewedStep
from opsgraph.graph.stores import check_state_stores
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.runner import ToolOutcome

ToolCall = Callable[[], ToolOutcome]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY,
    resource TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    symptom TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at REAL NOT NULL,
    closed_at REAL,
    report TEXT
);
CREATE INDEX IF NOT EXISTS incidents_by_fingerprint ON incidents (fingerprint, status);
CREATE TABLE IF NOT EXISTS plans (
    incident_id TEXT NOT NULL,
    plan_no INTEGER NOT NULL,
    plan TEXT NOT NULL,
    reviewed TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (incident_id, plan_no)
);
CREATE TABLE IF NOT EXISTS approvals (
    incident_id TEXT NOT NULL,
    plan_no INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    digest TEXT NOT NULL,
    decision TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    comment TEXT,
    decided_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    incident_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    idempotency_key TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('intent', 'result')),
    incident_id TEXT NOT NULL,
    plan_no INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT,
    record TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (idempotency_key, phase)
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_no INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    resource TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    incident_id TEXT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    starts_at REAL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_fingerprint ON alerts (source, fingerprint, alert_no);
CREATE TABLE IF NOT EXISTS notifications (
    incident_id TEXT NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (incident_id, event, channel)
);
"""

OPEN_STATUSES = ("open", "awaiting_approval")
# The newest still-open incident on a resource (grouping of dependents, alerts attached to it).
_OPEN_ON_RESOURCE = (
    "SELECT incident_id FROM incidents WHERE resource = ? AND status IN (?, ?) ORDER BY opened_at DESC LIMIT 1"
)
# An incident whose step changed the data unexpectedly holds its resource: OpsGraph acts on
# it no more until a human has looked and released it (`opsgraph incidents release`).
DATA_SAFETY_FAILURE = "data_safety_failure"
RELEASED = "data_safety_released"


def action_key(incident_id: str, plan_no: int, step_index: int, attempt: int = 0) -> str:
    """The idempotency key of one attempt at one step; a second attempt exists only when the first
    was settled as never having happened (its worker died before the tool took effect)."""
    key = f"{incident_id}/plan-{plan_no}/step-{step_index}"
    return key if attempt == 0 else f"{key}/attempt-{attempt}"


def _json(value: Any) -> str:
    """Every JSON column is written here: redacted, the last net behind the tools' own redaction.

    Not by key: the ledger's own fields are read back (an owner's lease `token` is no secret).
    """
    value = redact_value(value, by_key=False)
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, sort_keys=True, default=str)


class Ledger:
    """One SQLite file; a short-lived connection per operation so several processes can share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        check_state_stores(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                yield conn
        finally:
            conn.close()

    # incidents -----------------------------------------------------------
    def open_incident(self, incident: Incident) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO incidents (incident_id, resource, fingerprint, symptom, status, opened_at)"
                " VALUES (?, ?, ?, ?, 'open', ?)",
                (incident.incident_id, incident.resource, incident.fingerprint, incident.symptom, incident.detected_at),
            )

    def open_incident_for(self, fingerprint: str) -> str | None:
        """The id of a still-open incident with this fingerprint, if any (de-duplication)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT incident_id FROM incidents WHERE fingerprint = ? AND status IN (?, ?)"
                " ORDER BY opened_at DESC LIMIT 1",
                (fingerprint, *OPEN_STATUSES),
            ).fetchone()
        return row["incident_id"] if row else None

    def held_by(self, resource: str) -> str | None:
        """The data-safety failure that holds this resource, if a human has not released it yet."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT incident_id FROM incidents WHERE resource = ? AND status = ? ORDER BY opened_at DESC LIMIT 1",
                (resource, DATA_SAFETY_FAILURE),
            ).fetchone()
        return row["incident_id"] if row else None

    def release(self, incident_id: str, by: str) -> bool:
        """A human has looked at a data-safety failure: OpsGraph may act on the resource again.

        Who released it, and when, is kept in the incident's report.
        """
        with self._connect() as conn:
            cursor = conn.execute(
                "UPDATE incidents SET status = ?,"
                " report = json_set(coalesce(report, '{}'), '$.released', json_object('by', ?, 'at', ?))"
                " WHERE incident_id = ? AND status = ?",
                (RELEASED, by, time.time(), incident_id, DATA_SAFETY_FAILURE),
            )
        return cursor.rowcount == 1

    def last_closed_at(self, fingerprint: str) -> float | None:
        """When the latest incident with this fingerprint was closed (cooldowns start there)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT max(closed_at) AS closed_at FROM incidents WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        return row["closed_at"] if row else None

    def ids_with_status(self, status: str) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT incident_id FROM incidents WHERE status = ? ORDER BY opened_at", (status,)
            ).fetchall()
        return [row["incident_id"] for row in rows]

    def set_status(self, incident_id: str, status: str) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE incidents SET status = ? WHERE incident_id = ?", (status, incident_id))

    def close_incident(self, incident_id: str, status: str, report: dict[str, Any]) -> None:
        with self._connect() as conn:
            conn.execute(
                "UPDATE incidents SET status = ?, closed_at = ?, report = ? WHERE incident_id = ?",
                (status, time.time(), _json(report), incident_id),
            )

    def incidents(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT incident_id, resource, symptom, status, opened_at, closed_at FROM incidents"
                " ORDER BY opened_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(row) for row in rows]

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        record = dict(row)
        record["report"] = json.loads(record["report"]) if record["report"] else None
        return record

    # plans and approvals -------------------------------------------------
    def record_plan(self, incident_id: str, plan_no: int, plan: Plan, reviewed: list[ReviewedStep]) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO plans (incident_id, plan_no, plan, reviewed, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (incident_id, plan_no, _json(plan), _json([r.model_dump(mode="json") for r in reviewed]), time.time()),
            )

    def record_approval(self, incident_id: str, plan_no: int, step: ReviewedStep, approval: Approval) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO approvals (incident_id, plan_no, step_index, tool, args, digest, decision, decided_by,"
                " comment, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    incident_id,
                    plan_no,
                    step.index,
                    step.step.tool,
                    _json(step.step.args),
                    step.digest,
                    approval.decision,
                    approval.by,
                    redact_value(approval.comment, by_key=False),  # operator text may quote what it saw
                    approval.at,
                ),
            )

    def approved_digest(self, incident_id: str, plan_no: int, step_index: int) -> str | None:
        """The digest of the exact step a human approved, or None if nobody approved it."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT digest FROM approvals WHERE incident_id = ? AND plan_no = ? AND step_index = ?"
                " AND decision = 'approve' ORDER BY decided_at DESC LIMIT 1",
                (incident_id, plan_no, step_index),
            ).fetchone()
        return row["digest"] if row else None

    def approvals(self, incident_id: str) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM approvals WHERE incident_id = ? ORDER BY decided_at", (incident_id,)
            ).fetchall()
        return [dict(row) for row in rows]

    # actions -------------------------------------------------------------
    def claim(
        self,
        key: str,
        incident_id: str,
        plan_no: int,
        index: int,
        tool: str,
        args: dict[str, Any],
        owner: Owner,
        observed: str | None = None,
    ) -> Claim:
        """Take the step, or learn who has it: one INSERT, so two processes can never both win.

        The intent row carries its owner (to tell a running step from one whose worker died)
        and what the tool observed about the target before the call (to settle it after a crash).
        """
        intent = {"owner": owner.as_dict(), "observed": observed}
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO actions"
                " (idempotency_key, phase, incident_id, plan_no, step_index, tool, args, record, at)"
                " VALUES (?, 'intent', ?, ?, ?, ?, ?, ?, ?)",
                (key, incident_id, plan_no, index, tool, _json(args), _json(intent), time.time()),
            )
        if cursor.rowcount == 1:
            return Claim(won=True)
        return Claim(won=False, result=self.result_for(key), intent=self.intent(key))

    def intent(self, key: str) -> Intent | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM actions WHERE idempotency_key = ? AND phase = 'intent'", (key,)
            ).fetchone()
        return _intent(row) if row else None

    def in_doubt(self) -> list[Intent]:
        """Intents without a result: steps that are running now, or whose worker died mid-call."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM actions AS i WHERE phase = 'intent' AND NOT EXISTS"
                " (SELECT 1 FROM actions AS r WHERE r.idempotency_key = i.idempotency_key AND r.phase = 'result')"
                " ORDER BY at"
            ).fetchall()
        return [_intent(row) for row in rows]

    def record_result(self, key: str, incident_id: str, plan_no: int, record: ActionRecord) -> ActionRecord:
        """Store a step's result; a step has one result, so the first one written is the one returned."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO actions (idempotency_key, phase, incident_id, plan_no, step_index, tool, args,"
                " status, record, at) VALUES (?, 'result', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    incident_id,
                    plan_no,
                    record.index,
                    record.tool,
                    _json(record.args),
                    record.status,
                    _json(record),
                    time.time(),
                ),
            )
        stored = self.result_for(key)
        assert stored is not None  # just written, by this call or by the one that won
        return stored

    def recorded_call(
        self, key: str, owner: str, plan_no: int, index: int, tool: str, args: dict[str, Any], call: ToolCall
    ) -> ActionRecord:
        """Run one tool call between its intent row and its result row, under a key nobody else holds
        (an MCP call's fresh id): the audit trail of a mutating call that no graph step owns."""
        claim = self.claim(key, owner, plan_no, index, tool, args, Owner.here())
        if not claim.won:
            raise ValueError(f"action key {key} is already taken: a recorded call needs a fresh key")
        return self.record_result(key, owner, plan_no, run_recorded(index, tool, args, call))

    def result_for(self, key: str) -> ActionRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT record FROM actions WHERE idempotency_key = ? AND phase = 'result'", (key,)
            ).fetchone()
        return ActionRecord.model_validate_json(row["record"]) if row else None

    def actions(self, incident_id: str) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT idempotency_key, phase, tool, args, status, at FROM actions WHERE incident_id = ? ORDER BY at",
                (incident_id,),
            ).fetchall()
        return [dict(row) for row in rows]

    # runs: who drives an incident's graph right now ----------------------
    def acquire_run(self, incident_id: str, owner: Owner) -> Owner | None:
        """Become the one process driving this incident; returns the live holder instead when there is one.

        A holder that died (kill -9, a crash) holds nothing: its lease is taken over.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # read and take the lease as one step
            row = conn.execute("SELECT owner FROM runs WHERE incident_id = ?", (incident_id,)).fetchone()
            if row is not None:
                data = json.loads(row["owner"])
                holder = Owner.from_dict(data)
                if not data.get("released") and holder.token != owner.token and holder.alive():
                    return holder
            conn.execute(
                "INSERT OR REPLACE INTO runs (incident_id, owner, since) VALUES (?, ?, ?)",
                (incident_id, _json(owner.as_dict()), time.time()),
            )
        return None

    def release_run(self, incident_id: str, owner: Owner) -> None:
        """Let go of the lease; the row stays, saying this incident's graph runs on this state folder's
        checkpoints (an incident opened under a LangGraph server has no row: not ours to repair)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET owner = json_set(owner, '$.released', json('true'))"
                " WHERE incident_id = ? AND json_extract(owner, '$.token') = ?",
                (incident_id, owner.token),
            )

    def run_holder(self, incident_id: str) -> Owner | None:
        """The live process driving this incident, if any."""
        with self._connect() as conn:
            row = conn.execute("SELECT owner FROM runs WHERE incident_id = ?", (incident_id,)).fetchone()
        if row is None:
            return None
        data = json.loads(row["owner"])
        holder = Owner.from_dict(data)
        return holder if not data.get("released") and holder.alive() else None

    def ran_here(self, incident_id: str) -> bool:
        """Whether a process on these checkpoints ever drove this incident (see `release_run`)."""
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM runs WHERE incident_id = ?", (incident_id,)).fetchone()
        return row is not None

    # caps and grouping (opsgraph.graph.caps, opsgraph.graph.watch) ----------
    def intents_since(self, since: float) -> list[dict[str, Any]]:
        """Every action started at or after `since` (intent rows, any caller), oldest first, with its resource."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT idempotency_key, incident_id, tool, args, json_extract(args, '$.resource') AS resource, at"
                " FROM actions WHERE phase = 'intent' AND at >= ? ORDER BY at",
                (since,),
            ).fetchall()
        return [dict(row) for row in rows]

    def open_incident_on(self, resource: str) -> str | None:
        """The newest still-open incident on this resource, whatever its symptom (grouping of dependents)."""
        with self._connect() as conn:
            row = conn.execute(_OPEN_ON_RESOURCE, (resource, *OPEN_STATUSES)).fetchone()
        return row["incident_id"] if row else None

    # alerts (opsgraph.serve.alerts) -----------------------------------------
    @contextmanager
    def alert_intake(self) -> Iterator[AlertBook]:
        """One alert's look-up and record in one write transaction: of two deliveries of the same
        alert at once, the second sees the first's row (`BEGIN IMMEDIATE` serialises writers)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield AlertBook(conn)

    def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest alerts received first, with what was done about each."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM alerts ORDER BY alert_no DESC LIMIT ?", (limit,)).fetchall()
        return [_alert_row(row) for row in rows]

    def alerts_for(self, incident_id: str) -> list[dict[str, Any]]:
        """Every alert that started or joined this incident, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM alerts WHERE incident_id = ? ORDER BY alert_no", (incident_id,)
            ).fetchall()
        return [_alert_row(row) for row in rows]

    def settle_alert(self, alert_no: int, outcome: str, detail: str) -> None:
        """What came of the incident run an alert started (healthy, duplicate, resolved, ...)."""
        with self._connect() as conn:
            conn.execute("UPDATE alerts SET outcome = ?, detail = ? WHERE alert_no = ?", (outcome, detail, alert_no))

    # notifications (opsgraph.serve.notify) ------------------------------------
    def notification(self, incident_id: str, event: str, channel: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM notifications WHERE incident_id = ? AND event = ? AND channel = ?",
                (incident_id, event, channel),
            ).fetchone()
        return dict(row) if row else None

    def claim_notification(self, incident_id: str, event: str, channel: str) -> bool:
        """Take the delivery of one event to one channel (a `sending` row); False when another notifier has it.

        One INSERT that only one writer can win, as the executor's intents: two notifiers on one
        ledger send each event once between them.
        """
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO notifications (incident_id, event, channel, status, attempts, error, at)"
                " VALUES (?, ?, ?, 'sending', 0, NULL, ?)",
                (incident_id, event, channel, time.time()),
            )
        return cursor.rowcount == 1

    def record_notification(
        self, incident_id: str, event: str, channel: str, status: str, attempts: int, error: str | None
    ) -> None:
        """A delivery's latest state (sending, sent, failed); one row per incident, event and channel."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO notifications (incident_id, event, channel, status, attempts, error, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (incident_id, event, channel, status, attempts, redact_value(error, by_key=False), time.time()),
            )

    def notifications(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as conn:
            if incident_id is None:
                rows = conn.execute("SELECT * FROM notifications ORDER BY at").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM notifications WHERE incident_id = ? ORDER BY at", (incident_id,)
                ).fetchall()
        return [dict(row) for row in rows]


class AlertBook:
    """The alerts table inside one write transaction (see `Ledger.alert_intake`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def last_started(self, source: str, fingerprint: str) -> dict[str, Any] | None:
        """The newest alert from `source` with this fingerprint that started an incident run, with that
        incident's status and closing time (None for both while the run has not opened it yet)."""
        row = self._conn.execute(
            "SELECT a.*, i.status AS incident_status, i.closed_at AS incident_closed_at FROM alerts a"
            " LEFT JOIN incidents i ON i.incident_id = a.incident_id"
            " WHERE a.source = ? AND a.fingerprint = ? AND a.outcome IN ('started', 'ran')"
            " ORDER BY a.alert_no DESC LIMIT 1",
            (source, fingerprint),
        ).fetchone()
        return _alert_row(row) if row else None

    def open_incident_on(self, resource: str) -> str | None:
        row = self._conn.execute(_OPEN_ON_RESOURCE, (resource, *OPEN_STATUSES)).fetchone()
        return row["incident_id"] if row else None

    def record(
        self,
        *,
        source: str,
        fingerprint: str,
        name: str,
        status: str,
        resource: str | None,
        outcome: str,
        detail: str,
        incident_id: str | None,
        labels: dict[str, str],
        annotations: dict[str, str],
        starts_at: float | None,
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO alerts (source, fingerprint, name, status, resource, outcome, detail, incident_id, labels,"
            " annotations, starts_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                source,
                fingerprint,
                name,
                status,
                resource,
                outcome,
                redact_value(detail, by_key=False),
                incident_id,
                _json(labels),
                _json(annotations),
                starts_at,
                time.time(),
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def _alert_row(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["labels"] = json.loads(record["labels"])
    record["annotations"] = json.loads(record["annotations"])
    return record


def run_recorded(index: int, tool: str, args: dict[str, Any], call: ToolCall) -> ActionRecord:
    """Call the tool and describe what happened as the step's result record."""
    started = time.time()
    outcome = call()
    return ActionRecord(
        index=index,
        tool=tool,
        args=args,
        status="ok" if outcome.ok else "error",
        output=outcome.output,
        error=outcome.error,
        started_at=started,
        finished_at=time.time(),
        data_check=outcome.data_check,
    )


@dataclass(frozen=True)
class Intent:
    """A step that was started: who started it and what its tool saw of the target before."""

    key: str
    incident_id: str
    plan_no: int
    index: int
    tool: str
    args: dict[str, Any]
    at: float
    owner: Owner | None  # None: written by a version that did not record owners (treated as dead)
    observed: str | None

    @property
    def owner_alive(self) -> bool:
        return self.owner is not None and self.owner.alive()


def _intent(row: sqlite3.Row) -> Intent:
    extra = json.loads(row["record"]) if row["record"] else {}
    owner = extra.get("owner")
    return Intent(
        key=row["idempotency_key"],
        incident_id=row["incident_id"],
        plan_no=row["plan_no"],
        index=row["step_index"],
        tool=row["tool"],
        args=json.loads(row["args"]),
        at=row["at"],
        owner=Owner.from_dict(owner) if owner else None,
        observed=extra.get("observed"),
    )


@dataclass(frozen=True)
class Claim:
    """The answer to "may I run this step?": yes (`won`), or here is its result or its intent."""

    won: bool
    result: ActionRecord | None = None
    intent: Intent | None = None
