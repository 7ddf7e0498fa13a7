"""Sessions: one snapshot of pg_stat_activity, shared by postgres_info and the kill tool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from opsgraph.tools.postgres_tools.connection import OWN_PREFIX
from opsgraph.tools.redaction import redact_value

QUERY_TEXT_CHARS = 200

# One row per backend. `details_visible` is false when this role may not see the session's
# details (another role's session, without pg_read_all_stats): such a session is reported
# as hidden and never terminated. `may_signal` says whether this role may terminate it.
_SESSIONS = """
SELECT a.pid, a.usename AS user, a.datname AS database, a.application_name, a.state, a.backend_type,
       a.backend_start, a.backend_type IS NOT NULL AS details_visible,
       coalesce(r.rolsuper, true) AS superuser,
       coalesce(pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'), false)
           AS may_signal,
       extract(epoch FROM clock_timestamp() - a.state_change)::float8 AS state_age_s,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS xact_age_s,
       extract(epoch FROM clock_timestamp() - a.query_start)::float8 AS query_age_s,
       a.wait_event_type, a.wait_event, pg_blocking_pids(a.pid) AS blocked_by,
       a.query, a.pid = pg_backend_pid() AS is_self
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
ORDER BY a.pid
"""


@dataclass(frozen=True)
class Session:
    pid: int
    user: str | None
    database: str | None
    application_name: str
    state: str | None
    backend_type: str | None
    backend_start: datetime | None
    details_visible: bool
    superuser: bool
    may_signal: bool
    state_age_s: float | None
    xact_age_s: float | None
    query_age_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    blocked_by: list[int]
    query: str | None
    is_self: bool

    @property
    def is_client(self) -> bool:
        return self.backend_type == "client backend"

    @property
    def takes_a_slot(self) -> bool:
        """Whether this backend holds one of max_connections, counted as the probe counts it.

        Background processes have slots of their own. A session whose details are hidden
        from this role counts when it has a role and a database (background processes lack one).
        """
        return self.is_client or (not self.details_visible and self.user is not None and self.database is not None)

    def protection(self) -> str | None:
        """Why this session may never be terminated by OpsGraph, or None."""
        if self.is_self:
            return "own_session"
        if not self.details_visible:
            return "hidden"
        if not self.is_client:
            return "not_a_client_backend"  # walsenders, autovacuum, background workers
        if self.superuser:
            return "superuser"
        if self.application_name.startswith(OWN_PREFIX):
            return "opsgraph"
        if not self.may_signal:
            return "not_permitted"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "user": self.user,
            "database": self.database,
            "application_name": self.application_name,
            "state": self.state,
            "superuser": self.superuser,
            "state_age_s": rounded(self.state_age_s),
            "xact_age_s": rounded(self.xact_age_s),
            "query": self.query,
        }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def read_sessions(conn: psycopg.Connection[Any]) -> list[Session]:
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(_SESSIONS).fetchall()
    # Redacted before the text is cut to QUERY_TEXT_CHARS: a password cut in half is no longer
    # the known value, and the runner's redaction of the tool's output could not spot it.
    queries = redact_value([row["query"] for row in rows])
    return [
        Session(
            **{
                **row,
                "application_name": row["application_name"] or "",
                "blocked_by": list(row["blocked_by"] or []),
                "query": None if query is None else query[:QUERY_TEXT_CHARS],
            }
        )
        for row, query in zip(rows, queries, strict=True)
    ]
