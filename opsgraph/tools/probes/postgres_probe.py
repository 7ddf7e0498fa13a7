"""PostgreSQL probe: reachable, and connections in use vs max_connections."""

from __future__ import annotations

import time

import psycopg

from opsgraph.graph.schemas import Health, Snapshot
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import grade, unreachable


def postgres_conninfo(resource: Resource) -> str:
    """A libpq connection string; the password comes from the environment, never the inventory."""
    connection = resource.connection
    return psycopg.conninfo.make_conninfo(
        host=connection.host,
        port=connection.port,
        user=connection.user or "postgres",
        dbname=connection.database or "postgres",
        password=connection.password(),
        connect_timeout=3,
        application_name="opsgraph-probe",
    )


def probe_postgres(resource: Resource) -> Snapshot:
    try:
        with psycopg.connect(postgres_conninfo(resource), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity"
            ).fetchone()
    except psycopg.Error as error:
        return unreachable(resource, error)
    assert row is not None  # an aggregate always returns one row
    used, maximum = int(row[0]), int(row[1])
    pct = 100.0 * used / maximum
    health = grade(pct, resource.thresholds.connections_used_pct)
    degraded = health is not Health.HEALTHY
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=health,
        symptom="postgres_connection_pressure" if degraded else None,
        reasons=[f"{used} of max_connections {maximum} in use ({pct:.1f} %)"] if degraded else [],
        metrics={"connections": used, "max_connections": maximum, "connections_used_pct": round(pct, 2)},
        taken_at=time.time(),
    )
