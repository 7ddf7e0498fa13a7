"""How OpsGraph reaches a PostgreSQL resource: one libpq connection string, built in one place.

Kept apart from the probes and tools that use it so that anything in the tools layer
(liveness checks, data fingerprints) can connect without importing the probes.
"""

from __future__ import annotations

import psycopg

from opsgraph.tools.inventory import Resource


def postgres_conninfo(resource: Resource, application_name: str = "opsgraph-probe", connect_timeout: int = 3) -> str:
    """A libpq connection string; the password comes from the environment, never the inventory."""
    connection = resource.connection
    return psycopg.conninfo.make_conninfo(
        host=connection.host,
        port=connection.port,
        user=connection.user or "postgres",
        dbname=connection.database or "postgres",
        password=connection.password(),
        connect_timeout=connect_timeout,
        application_name=application_name,
    )
