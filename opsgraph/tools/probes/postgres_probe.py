"""PostgreSQL probe: connections in use vs max_connections, and queries blocked on locks."""

from __future__ import annotations

import psycopg

from opsgraph.graph.schemas import Snapshot
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable

# One round trip: everything the grade needs. Blocked = waiting on a lock another backend holds.
_QUERY = """
SELECT
    (SELECT count(*) FROM pg_stat_activity) AS connections,
    current_setting('max_connections')::int AS max_connections,
    (SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0) AS blocked,
    (SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity
      WHERE state = 'active' AND pid <> pg_backend_pid()) AS longest_active_s
"""


def postgres_conninfo(resource: Resource, application_name: str = "opsgraph-probe") -> str:
    """A libpq connection string; the password comes from the environment, never the inventory."""
    connection = resource.connection
    return psycopg.conninfo.make_conninfo(
        host=connection.host,
        port=connection.port,
        user=connection.user or "postgres",
        dbname=connection.database or "postgres",
        password=connection.password(),
        connect_timeout=3,
        application_name=application_name,
    )


def probe_postgres(resource: Resource) -> Snapshot:
    try:
        with psycopg.connect(postgres_conninfo(resource), autocommit=True) as conn:
            row = conn.execute(_QUERY).fetchone()
    except psycopg.Error as error:
        return unreachable(resource, error)
    assert row is not None  # a SELECT of scalars always returns one row
    connections, maximum, blocked, longest = int(row[0]), int(row[1]), int(row[2]), float(row[3])
    pct = 100.0 * connections / maximum
    thresholds = resource.thresholds
    connection_health = grade(pct, thresholds.connections_used_pct)
    blocked_health = grade(blocked, thresholds.blocked_queries)
    findings = [
        Finding(
            connection_health,
            "postgres_connection_pressure",
            f"{connections} of max_connections {maximum} in use ({pct:.1f} %)",
        ),
        Finding(
            blocked_health, "postgres_blocked_queries", f"{blocked} queries waiting on locks held by other sessions"
        ),
    ]
    return snapshot_of(
        resource,
        findings,
        {
            "connections": connections,
            "max_connections": maximum,
            "connections_used_pct": round(pct, 2),
            "blocked_queries": blocked,
            "longest_active_query_s": round(longest, 2),
        },
    )
