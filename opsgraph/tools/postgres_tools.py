"""PostgreSQL tools, reached through `psycopg` as the inventory's `connection.user`.

Every statement is either constant SQL with bound parameters or composed with
`psycopg.sql` from validated identifiers; no argument is ever formatted into SQL.

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

import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import Field, model_validator

from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.probes.postgres_probe import postgres_conninfo
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec

# How OpsGraph's own sessions are named; sessions with this prefix are never terminated.
OWN_PREFIX = "opsgraph"
APPLICATION_NAME = "opsgraph-tools"
# Every statement a tool sends is cut off after this (VACUUM has its own argument).
STATEMENT_TIMEOUT_MS = 15_000
# How long the kill tool waits for the terminated backends to exit, so that freed slots are real.
TERMINATE_WAIT_S = 3.0
# postgres_scale_connections never goes above this (a server that cannot allocate its
# shared memory for the new value would not come back after the restart).
MAX_SESSIONS_PER_CALL = 500
QUERY_TEXT_CHARS = 200

# Names OpsGraph accepts for roles and databases (compared as values, never spliced into SQL).
_NAME = r"^[A-Za-z_][A-Za-z0-9_.$-]{0,62}$"
# Plain (unquoted) identifiers, optionally schema-qualified, for VACUUM targets.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_TABLE = rf"^{_IDENT}(\.{_IDENT})?$"
# Printable ASCII: what PostgreSQL keeps of an application_name (at most 63 bytes).
_APPLICATION = r"^[\x20-\x7e]{1,63}$"

SessionState = Literal[
    "active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call", "disabled"
]


@contextmanager
def connect(resource: Resource, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit session named as OpsGraph's, with a statement timeout: a fix must never hang."""
    conninfo = psycopg.conninfo.make_conninfo(
        postgres_conninfo(resource, APPLICATION_NAME), options=f"-c statement_timeout={int(statement_timeout_ms)}"
    )
    try:
        conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as error:
        raise ToolError(f"cannot connect to {resource.name}: {str(error).strip()}") from None
    with conn:
        yield conn


# ---- sessions: one snapshot of pg_stat_activity, shared by postgres_info and the kill tool

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
       left(a.query, %(chars)s) AS query, a.pid = pg_backend_pid() AS is_self
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
            "state_age_s": _round(self.state_age_s),
            "xact_age_s": _round(self.xact_age_s),
            "query": self.query,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# A password literal in a statement's text (CREATE/ALTER ROLE … PASSWORD '…').
_PASSWORD_LITERAL = re.compile(r"(password\s+)'(?:[^']|'')*'?", re.IGNORECASE)


def _redacted(query: str | None) -> str | None:
    """Query text goes into reports and ledgers: never with a password in it."""
    return None if query is None else _PASSWORD_LITERAL.sub(r"\1'***'", query)


def read_sessions(conn: psycopg.Connection[Any]) -> list[Session]:
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(_SESSIONS, {"chars": QUERY_TEXT_CHARS}).fetchall()
    return [
        Session(
            **{
                **row,
                "application_name": row["application_name"] or "",
                "blocked_by": list(row["blocked_by"] or []),
                "query": _redacted(row["query"]),
            }
        )
        for row in rows
    ]


# ---- postgres_info


class PostgresInfoArgs(ToolArgs):
    long_query_s: Annotated[
        float, Field(ge=0, le=86_400, description="Sessions active or in a transaction at least this long are listed")
    ] = 30.0
    limit: Annotated[int, Field(ge=1, le=200, description="At most this many sessions per list")] = 20


def _by_application(clients: list[Session]) -> list[dict[str, Any]]:
    groups: dict[str, list[Session]] = {}
    for session in clients:
        groups.setdefault(session.application_name, []).append(session)
    summaries = []
    for name, sessions in groups.items():
        idle = [s for s in sessions if s.state == "idle"]
        idle_ages = [s.state_age_s for s in idle if s.state_age_s is not None]
        summaries.append(
            {
                "application_name": name,
                "sessions": len(sessions),
                "states": dict(Counter(s.state or "unknown" for s in sessions)),
                "users": sorted({s.user or "" for s in sessions}),
                "superuser_sessions": sum(s.superuser for s in sessions),
                "idle": len(idle),
                "idle_superuser": sum(s.superuser for s in idle),
                "idle_min_s": _round(min(idle_ages, default=None)),
                "idle_max_s": _round(max(idle_ages, default=None)),
            }
        )
    return sorted(summaries, key=lambda group: (-group["sessions"], group["application_name"]))


def _blocking(sessions: list[Session], limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Blocked sessions with what blocks them, and the blockers with how many they block."""
    blocked = [s for s in sessions if s.blocked_by]
    blocks: Counter[int] = Counter(pid for s in blocked for pid in s.blocked_by)
    by_pid = {s.pid: s for s in sessions}
    blockers = []
    for pid, count in blocks.most_common(limit):
        session = by_pid.get(pid)
        entry: dict[str, Any] = {"pid": pid, "blocks": count}
        if session is not None:
            entry.update(session.summary())
            entry["root"] = not session.blocked_by  # not itself waiting: the head of the chain
            entry["protected"] = session.protection()
        blockers.append(entry)
    waiting = sorted(blocked, key=lambda s: -(s.query_age_s or 0))[:limit]
    blocked_list = [
        {
            **s.summary(),
            "waiting_s": _round(s.query_age_s),
            "wait_event": f"{s.wait_event_type}:{s.wait_event}",
            "blocked_by": s.blocked_by,
        }
        for s in waiting
    ]
    return blocked_list, blockers


def _runs_long(session: Session, threshold_s: float) -> bool:
    """A query running this long, or a transaction left open this long (it holds its locks)."""
    if session.state == "active" and not session.is_self:
        return (session.query_age_s or 0) >= threshold_s
    return (session.state or "").startswith("idle in transaction") and (session.xact_age_s or 0) >= threshold_s


def postgres_info(args: PostgresInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Who holds the connections and the locks: the facts a connection or lock incident needs (read-only)."""
    resource = ctx.resource(args.resource)
    with connect(resource) as conn:
        settings = conn.execute(
            "SELECT current_setting('server_version') AS version,"
            " current_setting('max_connections')::int AS max_connections,"
            " current_setting('superuser_reserved_connections')::int AS reserved,"
            " pg_is_in_recovery() AS in_recovery, current_user AS connected_as,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS connected_as_superuser"
        ).fetchone()
        sessions = read_sessions(conn)
        locks = conn.execute("SELECT mode, granted, count(*) AS n FROM pg_locks GROUP BY mode, granted").fetchall()
        databases = conn.execute(
            "SELECT datname AS name, pg_database_size(datname) AS bytes FROM pg_database"
            " WHERE datallowconn AND has_database_privilege(datname, 'CONNECT') ORDER BY bytes DESC"
        ).fetchall()
    assert settings is not None  # a SELECT of scalars always returns one row
    clients = [s for s in sessions if s.is_client]
    maximum = settings["max_connections"]
    long_running = sorted(
        (s for s in clients if _runs_long(s, args.long_query_s)),
        key=lambda s: -max(s.query_age_s or 0, s.xact_age_s or 0),
    )
    blocked, blockers = _blocking(sessions, args.limit)
    users: dict[str, dict[str, Any]] = {}
    for s in clients:
        entry = users.setdefault(s.user or "", {"user": s.user, "superuser": s.superuser, "sessions": 0})
        entry["sessions"] += 1
    return {
        "server_version": settings["version"],
        "in_recovery": settings["in_recovery"],
        "connected_as": settings["connected_as"],
        "connected_as_superuser": settings["connected_as_superuser"],
        "max_connections": maximum,
        "superuser_reserved_connections": settings["reserved"],
        # Counted as the probe counts them (every row of pg_stat_activity), so numbers agree.
        "connections": len(sessions),
        "connections_used_pct": round(100.0 * len(sessions) / maximum, 2),
        "client_connections": len(clients),
        "hidden_sessions": sum(not s.details_visible for s in sessions),
        "backend_types": dict(Counter(s.backend_type or "hidden" for s in sessions)),
        "by_state": dict(Counter(s.state or "unknown" for s in clients)),
        "by_application": _by_application(clients)[: args.limit],
        "by_user": sorted(users.values(), key=lambda u: -u["sessions"])[: args.limit],
        "long_running": [
            {**s.summary(), "query_age_s": _round(s.query_age_s), "wait_event_type": s.wait_event_type}
            for s in long_running[: args.limit]
        ],
        "blocked_queries": len([s for s in sessions if s.blocked_by]),
        "blocked": blocked,
        "blockers": blockers,
        "locks": {
            "granted": sum(row["n"] for row in locks if row["granted"]),
            "waiting": sum(row["n"] for row in locks if not row["granted"]),
            "by_mode": {f"{row['mode']}{'' if row['granted'] else ' (waiting)'}": row["n"] for row in locks},
        },
        "databases": [{"name": row["name"], "size_mb": round(row["bytes"] / 2**20, 2)} for row in databases],
    }


# ---- postgres_kill_long_queries


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
        str | None, Field(pattern=_APPLICATION, description="Only sessions with exactly this application_name")
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


def postgres_kill_long_queries(args: PostgresKillArgs, ctx: ToolContext) -> dict[str, Any]:
    """Terminate the client sessions matching the filters (oldest in their state first), never protected ones."""
    resource = ctx.resource(args.resource)
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


# ---- postgres_scale_connections


class PostgresScaleConnectionsArgs(ToolArgs):
    max_connections: Annotated[
        int, Field(ge=10, le=10_000, description="New max_connections; must exceed current usage")
    ]


def _connections_ceiling(args: PostgresScaleConnectionsArgs, resource: Resource) -> str | None:
    ceiling = resource.policy.max_connections
    if args.max_connections > ceiling:
        return f"max_connections {args.max_connections} is above this resource's policy ceiling of {ceiling}"
    return None


def _current_max_connections(resource: Resource) -> tuple[int, int]:
    with connect(resource) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int AS max, (SELECT count(*) FROM pg_stat_activity) AS used"
        ).fetchone()
    assert row is not None
    return int(row["max"]), int(row["used"])


def postgres_scale_connections(args: PostgresScaleConnectionsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set max_connections (ALTER SYSTEM) and restart through the environment: every session is dropped."""
    resource = ctx.resource(args.resource)
    if (problem := _connections_ceiling(args, resource)) is not None:
        raise ToolError(problem)
    # First: an environment without a lifecycle must fail before anything changes.
    lifecycle = ctx.lifecycle(resource)
    previous, used = _current_max_connections(resource)
    if args.max_connections <= used:
        raise ToolError(
            f"max_connections {args.max_connections} is not above the {used} connections in use; "
            "refusing to make the pressure worse"
        )
    with connect(resource) as conn:
        try:
            # A utility statement takes no bound parameters; the validated int goes in as a Literal.
            conn.execute(sql.SQL("ALTER SYSTEM SET max_connections = {}").format(sql.Literal(args.max_connections)))
        except psycopg.errors.InsufficientPrivilege as error:
            raise ToolError(
                f"{resource.name}: {str(error).strip()}; ALTER SYSTEM needs a superuser or "
                "GRANT ALTER SYSTEM ON PARAMETER max_connections to the inventory's connection.user"
            ) from None
    began = time.monotonic()
    status = lifecycle.restart(resource.name)
    now, _ = _current_max_connections(resource)
    if now != args.max_connections:
        raise ToolError(
            f"after the restart max_connections is {now}, not {args.max_connections}: "
            "a setting on the command line or in a later file overrides postgresql.auto.conf"
        )
    return {
        "previous_max_connections": previous,
        "max_connections": now,
        "pid": status.pid,
        "restart_s": round(time.monotonic() - began, 2),
    }


# ---- postgres_vacuum


class PostgresVacuumArgs(ToolArgs):
    table: Annotated[
        str | None,
        Field(pattern=_TABLE, description="Table (optionally schema.table) to vacuum; omit for the whole database"),
    ] = None
    timeout_s: Annotated[int, Field(ge=1, le=3600, description="Cancel the VACUUM after this long")] = 15


_DEAD_TUPLES = """
SELECT coalesce(sum(s.n_dead_tup), 0)::bigint AS dead,
       coalesce(sum(pg_total_relation_size(s.relid)), 0)::bigint AS bytes
FROM pg_stat_user_tables s WHERE %(oid)s::oid IS NULL OR s.relid = %(oid)s::oid
"""


def _resolve_table(conn: psycopg.Connection[Any], name: str) -> tuple[int, str, str]:
    """The table's oid and exact schema and name, as the server resolves the (unquoted) name."""
    row = conn.execute(
        "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass(%s)",
        (name,),
    ).fetchone()
    if row is None:
        raise ToolError(f"no table {name!r} in this database")
    if row["relkind"] not in ("r", "m", "p", "t"):
        raise ToolError(f"{name!r} is not a table or materialized view (relkind {row['relkind']})")
    return int(row["oid"]), str(row["nspname"]), str(row["relname"])


def postgres_vacuum(args: PostgresVacuumArgs, ctx: ToolContext) -> dict[str, Any]:
    """VACUUM (ANALYZE) one table or the whole database: frees dead rows for reuse, refreshes statistics."""
    resource = ctx.resource(args.resource)
    with connect(resource, statement_timeout_ms=args.timeout_s * 1000) as conn:
        target: sql.Composable
        if args.table is None:
            oid, target = None, sql.SQL("")
            vacuumed = f"database {resource.connection.database or 'postgres'}"
        else:
            oid, schema, name = _resolve_table(conn, args.table)
            target = sql.SQL(" {}").format(sql.Identifier(schema, name))
            vacuumed = f"{schema}.{name}"
        before = conn.execute(_DEAD_TUPLES, {"oid": oid}).fetchone()
        began = time.monotonic()
        try:
            conn.execute(sql.SQL("VACUUM (ANALYZE){}").format(target))
        except psycopg.errors.QueryCanceled:
            raise ToolError(
                f"VACUUM of {vacuumed} did not finish within {args.timeout_s} s and was cancelled"
            ) from None
        took = time.monotonic() - began
        after = conn.execute(_DEAD_TUPLES, {"oid": oid}).fetchone()
    assert before is not None and after is not None
    return {
        "vacuumed": vacuumed,
        "dead_tuples_before": int(before["dead"]),
        "dead_tuples_after": int(after["dead"]),
        "size_mb_before": round(before["bytes"] / 2**20, 2),
        "size_mb_after": round(after["bytes"] / 2**20, 2),
        "duration_s": round(took, 2),
    }


# ---- postgres_restart


def postgres_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart the server through its environment: every session and in-flight transaction is dropped."""
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


TOOLS: list[ToolSpec[Any]] = [
    ToolSpec(
        name="postgres_info",
        description=(
            "Read PostgreSQL connections vs max_connections (by state, application and user), long-running "
            "queries, blocked queries with their blockers, lock counts and database sizes."
        ),
        args_model=PostgresInfoArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.READ,
        run=postgres_info,
        idempotent=True,
    ),
    ToolSpec(
        name="postgres_kill_long_queries",
        description=(
            "Terminate client sessions matching filters (state, min_duration_s, user, database, application_name, "
            "blockers_only), oldest first, at most max_sessions; never superuser, walsender or OpsGraph sessions."
        ),
        args_model=PostgresKillArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.DISRUPTIVE,
        run=postgres_kill_long_queries,
        idempotent=True,
    ),
    ToolSpec(
        name="postgres_scale_connections",
        description="Set max_connections with ALTER SYSTEM and restart the server (drops every session).",
        args_model=PostgresScaleConnectionsArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.DISRUPTIVE,
        run=postgres_scale_connections,
        idempotent=True,
        undo="postgres_scale_connections with max_connections = previous_max_connections from the result",
        check_limits=_connections_ceiling,
    ),
    ToolSpec(
        name="postgres_vacuum",
        description="VACUUM (ANALYZE) one table or the whole database; keeps all data.",
        args_model=PostgresVacuumArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.SAFE,
        run=postgres_vacuum,
        idempotent=True,
    ),
    ToolSpec(
        name="postgres_restart",
        description="Restart the PostgreSQL server through its environment; every session is dropped.",
        args_model=ToolArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.DISRUPTIVE,
        run=postgres_restart,
        idempotent=False,
    ),
]
