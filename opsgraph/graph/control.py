"""The stop switch: pauses, holds and resumes, as rows in the ledger's SQLite file.

A stop is either global (`opsgraph pause`: every worker of this state folder stops starting
mutating actions) or on one resource (`opsgraph pause --resource X`, or a hold OpsGraph puts
on a resource itself when it escalates a crash loop or a spent action cap). It lasts until a
human runs `opsgraph resume` (with `--resource X` for a resource).

Why rows in the ledger file and not a flag in memory: every process that shares the state
folder (any number of `watch`es, `approve`, `fix`, the MCP server) reads the same file, so
one `pause` reaches all of them at their next probe or step. The table is append-only — the
latest row of a scope is its state — so who paused, who resumed and when stays on record.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opsgraph.graph.ledger import Ledger

EVERYTHING = "*"  # the scope of a global pause
StopKind = Literal["paused", "held", "resumed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS controls (
    scope TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('paused', 'held', 'resumed')),
    by TEXT NOT NULL,
    reason TEXT,
    incident_id TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS controls_by_scope ON controls (scope, at);
CREATE TABLE IF NOT EXISTS grouped (
    incident_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    symptom TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (incident_id, resource, symptom)
);
"""


_READY: set[Path] = set()  # ledger files whose control tables this process has created


@dataclass(frozen=True)
class Stop:
    """The latest control row of a scope: paused or held (in force), or resumed (lifted)."""

    scope: str
    state: StopKind
    by: str
    reason: str | None
    incident_id: str | None
    at: float

    @property
    def in_force(self) -> bool:
        return self.state != "resumed"

    def describe(self) -> str:
        """One line for logs and refusals: what stops, who or what stopped it, and how to lift it."""
        when = time.strftime("%H:%M:%S", time.localtime(self.at))
        what = "OpsGraph is paused" if self.scope == EVERYTHING else f"{self.scope} is {self.state}"
        why = f" ({self.reason})" if self.reason else ""
        lift = "opsgraph resume" if self.scope == EVERYTHING else f"opsgraph resume --resource {self.scope}"
        return f"{what} by {self.by} since {when}{why}: no mutating action until `{lift} --by NAME`"


class Controls:
    """Pauses, holds and resumes of one state folder (they live next to its ledger)."""

    def __init__(self, ledger: Ledger) -> None:
        self.path = ledger.path
        if self.path not in _READY:  # once per file and process: a watcher builds one per probe and step
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
            _READY.add(self.path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _record(self, scope: str, state: StopKind, by: str, reason: str | None, incident_id: str | None) -> Stop:
        stop = Stop(scope=scope, state=state, by=by, reason=reason, incident_id=incident_id, at=time.time())
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO controls (scope, state, by, reason, incident_id, at) VALUES (?, ?, ?, ?, ?, ?)",
                (scope, state, by, reason, incident_id, stop.at),
            )
        return stop

    def latest(self, scope: str) -> Stop | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM controls WHERE scope = ? ORDER BY at DESC, rowid DESC LIMIT 1", (scope,)
            ).fetchone()
        return Stop(**dict(row)) if row else None

    def pause(self, by: str, reason: str | None = None, scope: str = EVERYTHING) -> Stop:
        return self._record(scope, "paused", by, reason, None)

    def hold(self, resource: str, incident_id: str, reason: str) -> Stop:
        """OpsGraph stops itself on a resource it escalated (crash loop, spent cap) until a human resumes it."""
        return self._record(resource, "held", "opsgraph", reason, incident_id)

    def resume(self, by: str, scope: str = EVERYTHING) -> Stop | None:
        """Lift the stop in force on `scope`; returns it, or None when nothing was stopped there."""
        current = self.latest(scope)
        if current is None or not current.in_force:
            return None
        self._record(scope, "resumed", by, f"lifts {current.state} by {current.by}", current.incident_id)
        return current

    def stop_for(self, resource: str) -> Stop | None:
        """The stop that keeps OpsGraph from acting on `resource` now: the global pause first, then its own."""
        for scope in (EVERYTHING, resource):
            stop = self.latest(scope)
            if stop is not None and stop.in_force:
                return stop
        return None

    def resumed_at(self, resource: str) -> float:
        """When a human last resumed this resource (or everything): action caps count from there."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT max(at) AS at FROM controls WHERE state = 'resumed' AND scope IN (?, ?)",
                (EVERYTHING, resource),
            ).fetchone()
        return float(row["at"]) if row and row["at"] is not None else 0.0

    def stops_in_force(self) -> list[Stop]:
        with self._connect() as conn:
            scopes = [row["scope"] for row in conn.execute("SELECT DISTINCT scope FROM controls ORDER BY scope")]
        return [stop for scope in scopes if (stop := self.latest(scope)) is not None and stop.in_force]

    # dependents grouped under a root incident ------------------------------
    def group(self, incident_id: str, resource: str, symptom: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO grouped (incident_id, resource, symptom, at) VALUES (?, ?, ?, ?)",
                (incident_id, resource, symptom, time.time()),
            )

    def grouped_under(self, incident_id: str) -> list[str]:
        """The dependents grouped under this incident, as `resource (symptom)`, first seen first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT resource, symptom FROM grouped WHERE incident_id = ? ORDER BY at", (incident_id,)
            ).fetchall()
        return [f"{row['resource']} ({row['symptom']})" for row in rows]
