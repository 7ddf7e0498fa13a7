"""postgres_info: who holds the connections and the locks (read-only)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from pydantic import Field

from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools.activity import Session, read_sessions, rounded
from opsgraph.tools.postgres_tools.connection import connect
from opsgraph.tools.probes.postgres_config import config_errors
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, declare


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
                "idle_min_s": rounded(min(idle_ages, default=None)),
                "idle_max_s": rounded(max(idle_ages, default=None)),
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
            "waiting_s": rounded(s.query_age_s),
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


@declare(risk=Risk.READ, target=ResourceKind.POSTGRES, idempotent=True)
def postgres_info(args: PostgresInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read PostgreSQL client connections vs the ordinary slots (max_connections minus reserved), by state,
    application and user; long-running queries, blocked queries with their blockers, lock counts,
    database sizes and configuration lines the server would reject.

    Who holds the connections and the locks: the facts a connection or lock incident needs.
    """
    return read_postgres_info(ctx.resource(args.resource), args)


def read_postgres_info(resource: Resource, args: PostgresInfoArgs) -> dict[str, Any]:
    """postgres_info's facts about the server `resource` reaches (a Cloud SQL instance's data plane too)."""
    with connect(resource) as conn:
        settings = conn.execute(
            "SELECT current_setting('server_version') AS version,"
            " current_setting('max_connections')::int AS max_connections,"
            " current_setting('superuser_reserved_connections')::int AS superuser_reserved,"
            " coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,"
            " pg_is_in_recovery() AS in_recovery, current_user AS connected_as,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS connected_as_superuser"
        ).fetchone()
        sessions = read_sessions(conn)
        locks = conn.execute("SELECT mode, granted, count(*) AS n FROM pg_locks GROUP BY mode, granted").fetchall()
        databases = conn.execute(
            "SELECT datname AS name, pg_database_size(datname) AS bytes FROM pg_database"
            " WHERE datallowconn AND has_database_privilege(datname, 'CONNECT') ORDER BY bytes DESC"
        ).fetchall()
        config = config_errors(conn)
    assert settings is not None  # a SELECT of scalars always returns one row
    clients = [s for s in sessions if s.is_client and not s.is_self]
    # Counted as the probe counts them (client backends but this session), so numbers agree.
    used = sum(s.takes_a_slot and not s.is_self for s in sessions)
    maximum = settings["max_connections"]
    usable = max(1, maximum - settings["superuser_reserved"] - settings["reserved"])
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
        "superuser_reserved_connections": settings["superuser_reserved"],
        "reserved_connections": settings["reserved"],
        # The slots ordinary roles may use; the rest are kept for superusers.
        "usable_connections": usable,
        "connections": used,
        "connections_free": max(0, usable - used),
        "connections_used_pct": round(100.0 * used / usable, 2),
        "background_processes": sum(not s.takes_a_slot for s in sessions),
        "hidden_sessions": sum(not s.details_visible for s in sessions),
        "backend_types": dict(Counter(s.backend_type or "hidden" for s in sessions)),
        "by_state": dict(Counter(s.state or "unknown" for s in clients)),
        "by_application": _by_application(clients)[: args.limit],
        "by_user": sorted(users.values(), key=lambda u: -u["sessions"])[: args.limit],
        "long_running": [
            {
                **s.summary(),
                "query_age_s": rounded(s.query_age_s),
                "wait_event_type": s.wait_event_type,
                "protected": s.protection(),
            }
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
        # Lines of the configuration files the server would reject (None: this role may not read them).
        "config_errors": None if config is None else [error.summary() for error in config],
    }
