"""PostgreSQL probe: connection slots in use, queries blocked on locks, a config on disk that would fail.

Slots are counted as PostgreSQL counts them: only client backends take one of
`max_connections`; background processes (checkpointer, walwriter, autovacuum,
walsenders…) have slots of their own. Ordinary roles may use `max_connections`
minus the slots reserved for superusers (`superuser_reserved_connections`, and from
PostgreSQL 16 `reserved_connections`): when those are all taken the server is
*full*, not down — an ordinary role is refused with "remaining connection slots are
reserved". OpsGraph's connection (a superuser's, as the tests and the README set it up)
still gets in through the reserved slots, so the probe can measure a full server; if
even that is refused, it still reports saturation, never an outage.
"""

from __future__ import annotations

from typing import Any

import psycopg

from opsgraph.tools.connections import postgres_conninfo
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable
from opsgraph.tools.probes.postgres_config import ConfigError, config_errors
from opsgraph.tools.snapshot import Health, Snapshot

# What PostgreSQL says to a connection it has no slot for (15: "... for non-replication superuser
# connections"; 16: "... for roles with the SUPERUSER attribute").
NO_SLOT = ("too many clients", "remaining connection slots are reserved")

# A client backend, or a session whose details this role may not see but that has a role and a
# database (background processes have no role, or no database, like the logical replication launcher).
CLIENT_BACKEND = (
    "coalesce(backend_type = 'client backend'"
    " OR (backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL), false)"
)

# One round trip: everything the grade needs. The probe's own session is not counted: it is gone
# a moment later. Blocked = waiting on a lock another backend holds.
_QUERY = f"""
SELECT
    count(*) FILTER (WHERE {CLIENT_BACKEND} AND pid <> pg_backend_pid()) AS connections,
    count(*) FILTER (WHERE NOT {CLIENT_BACKEND}) AS background_processes,
    current_setting('max_connections')::int AS max_connections,
    current_setting('superuser_reserved_connections')::int AS superuser_reserved,
    coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
    count(*) FILTER (WHERE cardinality(pg_blocking_pids(pid)) > 0) AS blocked,
    coalesce(max(extract(epoch FROM now() - query_start))
             FILTER (WHERE state = 'active' AND {CLIENT_BACKEND} AND pid <> pg_backend_pid()), 0)::float8
        AS longest_active_s
FROM pg_stat_activity
"""


def no_slot(error: psycopg.Error) -> bool:
    """Whether the server refused a connection because it is full (it is up)."""
    return any(text in str(error) for text in NO_SLOT)


def _refused_for_want_of_a_slot(resource: Resource, error: psycopg.Error) -> Snapshot:
    user = resource.connection.user or "postgres"
    finding = Finding(
        Health.FAILED,
        "postgres_connections_exhausted",
        f"OpsGraph could not get a connection slot as {user}: the server answered "
        f"{str(error).strip()!r}; every slot is taken (the server is up, and full)",
    )
    return snapshot_of(resource, [finding], {"connections_free": 0})


def _slots(row: tuple[Any, ...]) -> dict[str, int]:
    connections, background, maximum, superuser_reserved, reserved = (int(value) for value in row[:5])
    usable = max(1, maximum - superuser_reserved - reserved)
    return {
        "connections": connections,
        "max_connections": maximum,
        "superuser_reserved_connections": superuser_reserved,
        "reserved_connections": reserved,
        "usable_connections": usable,
        "connections_free": max(0, usable - connections),
        "background_processes": background,
    }


def _connection_finding(resource: Resource, slots: dict[str, int], pct: float) -> Finding:
    used, usable = slots["connections"], slots["usable_connections"]
    counted = (
        f"{used} client connections of the {usable} ordinary slots (max_connections {slots['max_connections']} "
        f"minus {slots['max_connections'] - usable} reserved)"
    )
    if used >= usable:
        return Finding(
            Health.FAILED,
            "postgres_connections_exhausted",
            f"{counted}: every ordinary slot is taken, only the reserved ones are left; "
            "applications connecting as ordinary roles are refused",
        )
    health = grade(pct, resource.thresholds.connections_used_pct)
    return Finding(health, "postgres_connection_pressure", f"{counted} in use ({pct:.1f} %)")


def _config_finding(errors: list[ConfigError] | None) -> Finding:
    if not errors:
        return Finding(Health.HEALTHY, "postgres_config_invalid", "the configuration files parse")
    shown = "; ".join(error.describe() for error in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return Finding(
        Health.DEGRADED,
        "postgres_config_invalid",
        f"the configuration on disk would be rejected at the next reload or restart: {shown}{more}",
    )


def probe_postgres(resource: Resource) -> Snapshot:
    try:
        with psycopg.connect(postgres_conninfo(resource), autocommit=True) as conn:
            row = conn.execute(_QUERY).fetchone()
            errors = config_errors(conn)
    except psycopg.Error as error:
        if no_slot(error):
            return _refused_for_want_of_a_slot(resource, error)
        return unreachable(resource, error)
    assert row is not None  # an aggregate without GROUP BY always returns one row
    slots = _slots(row)
    blocked, longest = int(row[5]), float(row[6])
    pct = 100.0 * slots["connections"] / slots["usable_connections"]
    findings = [
        _connection_finding(resource, slots, pct),
        Finding(
            grade(blocked, resource.thresholds.blocked_queries),
            "postgres_blocked_queries",
            f"{blocked} queries waiting on locks held by other sessions",
        ),
        _config_finding(errors),
    ]
    return snapshot_of(
        resource,
        findings,
        {
            **slots,
            "connections_used_pct": round(pct, 2),
            "blocked_queries": blocked,
            "longest_active_query_s": round(longest, 2),
            "config_errors": None if errors is None else len(errors),
        },
    )
