"""postgres_kill_long_queries: terminating sessions, and the rules that protect some of them.

Terminating sessions is the sharp tool here, so its protections live in code, twice
(once when choosing, again in the statement that terminates): it never touches a
superuser's session, a walsender or any other non-client backend, OpsGraph's own
sessions (application_name starting ``opsgraph``) or the session it runs in. A
session whose details this role may not see (pg_stat_activity hides them) is never a
candidate either. Applications are expected to connect as ordinary roles; a fault
held by a superuser session is reported as such, and a human (or a restart) deals
with it.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Any, Literal

import psycopg
from pydantic import Field, model_validator

from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools.activity import Session, read_sessions
from opsgraph.tools.postgres_tools.connection import OWN_PREFIX, connect
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, declare

# How long the kill tool waits for the terminated backends to exit, so that freed slots are real.
TERMINATE_WAIT_S = 3.0
# One call terminates at most this many sessions: a filter that matches more is more
# likely a mistake than a leak, and the operator should look first.
MAX_SESSIONS_PER_CALL = 500

# Names OpsGraph accepts for roles and databases (compared as values, never spliced into SQL).
_NAME = r"^[A-Za-z_][A-Za-z0-9_.$-]{0,62}$"
# Printable ASCII: what PostgreSQL keeps of an application_name (at most 63 bytes). Empty: none set,
# which is how many drivers and hand-written clients connect.
_APPLICATION = r"^[\x20-\x7e]{0,63}$"

SessionState = Literal[
    "active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call", "disabled"
]


class PostgresKillArgs(ToolArgs):
    state: SessionState | None = Field(
        None, description="Only sessions in this state (e.g. idle, 'idle in transaction')"
    )
    min_duration_s: Annotated[
        float | None, Field(ge=0, le=604_800, description="Only sessions in their current state at least this long")
    ] = None
    user: Annotated[str | None, Field(pattern=_NAME, description="Only sessions of this role")] = None
    database: Annotated[str | None, Field(pattern=_NAME, description="Only sessions on this database")] = None
    application_name: Annotated[
        str | None,
        Field(
            pattern=_APPLICATION,
            description="Only sessions with exactly this application_name ('' = sessions that set none)",
        ),
    ] = None
    blockers_only: bool = Field(False, description="Only sessions that hold a lock another session waits for")
    max_sessions: Annotated[
        int, Field(ge=1, le=MAX_SESSIONS_PER_CALL, description="Terminate at most this many (oldest first)")
    ] = 100
    dry_run: bool = Field(False, description="Report what would be terminated; terminate nothing")

    @model_validator(mode="after")
    def _narrowed(self) -> PostgresKillArgs:
        filters = (self.state, self.min_duration_s, self.user, self.database, self.application_name)
        if all(value is None for value in filters) and not self.blockers_only:
            raise ValueError(
                "give at least one filter (state, min_duration_s, user, database, application_name or blockers_only)"
            )
        return self


def _matches(session: Session, args: PostgresKillArgs, blocking: set[int]) -> bool:
    return (
        (args.state is None or session.state == args.state)
        and (
            args.min_duration_s is None
            or (session.state_age_s is not None and session.state_age_s >= args.min_duration_s)
        )
        and (args.user is None or session.user == args.user)
        and (args.database is None or session.database == args.database)
        and (args.application_name is None or session.application_name == args.application_name)
        and (not args.blockers_only or session.pid in blocking)
    )


# The protections again, in the statement that terminates: a pid is only signalled if it
# is still the same backend (same start time) and still not protected.
TERMINATE_SQL = """
SELECT a.pid, pg_terminate_backend(a.pid) AS signalled
FROM pg_stat_activity a
JOIN unnest(%(pids)s::int[], %(starts)s::timestamptz[]) AS t(pid, started)
  ON a.pid = t.pid AND a.backend_start = t.started
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND NOT coalesce(r.rolsuper, true)
  AND NOT starts_with(coalesce(a.application_name, ''), %(own_prefix)s)
"""


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.POSTGRES, idempotent=True)
def postgres_kill_long_queries(args: PostgresKillArgs, ctx: ToolContext) -> dict[str, Any]:
    """Terminate client sessions matching filters (state, min_duration_s, user, database, application_name
    ('' = none set), blockers_only), oldest first, at most max_sessions; never superuser, walsender or
    OpsGraph sessions.

    "Oldest" is within their state; the protections are described in this module's docstring.
    """
    return kill_long_queries(ctx.resource(args.resource), args)


def kill_long_queries(resource: Resource, args: PostgresKillArgs) -> dict[str, Any]:
    """postgres_kill_long_queries on the server `resource` reaches (a Cloud SQL instance's data plane too)."""
    with connect(resource) as conn:
        sessions = read_sessions(conn)
        blocking = {pid for s in sessions for pid in s.blocked_by}
        matched = [s for s in sessions if _matches(s, args, blocking)]
        spared = Counter(reason for s in matched if (reason := s.protection()) is not None)
        allowed = sorted((s for s in matched if s.protection() is None), key=lambda s: -(s.state_age_s or 0))
        chosen = allowed[: args.max_sessions]
        gone: set[int] = set()
        if chosen and not args.dry_run:
            rows = conn.execute(
                TERMINATE_SQL,
                {
                    "pids": [s.pid for s in chosen],
                    "starts": [s.backend_start for s in chosen],
                    "own_prefix": OWN_PREFIX,
                },
            ).fetchall()
            gone = _wait_until_gone(conn, {row["pid"] for row in rows if row["signalled"]})
    terminated = [s for s in chosen if s.pid in gone]
    return {
        "dry_run": args.dry_run,
        "matched": len(matched),
        "spared": dict(spared),
        "over_limit": max(0, len(allowed) - args.max_sessions),
        "would_terminate": len(chosen),
        "terminated": len(terminated),
        # Chosen, but changed before the signal (gone, or a new backend on the pid) or still alive after the wait.
        "not_terminated": [] if args.dry_run else [s.pid for s in chosen if s.pid not in gone],
        "sessions": [s.summary() for s in (chosen if args.dry_run else terminated)][:50],
    }


def _wait_until_gone(conn: psycopg.Connection[Any], pids: set[int]) -> set[int]:
    """The signalled pids whose backends have exited, waiting up to TERMINATE_WAIT_S for all of them.

    One wait for the lot: pg_terminate_backend's own timeout polls each backend in turn,
    at 100 ms a session.
    """
    deadline = time.monotonic() + TERMINATE_WAIT_S
    while True:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchall()
        alive = {row["pid"] for row in rows}
        if not alive or time.monotonic() > deadline:
            return pids - alive
        time.sleep(0.02)
