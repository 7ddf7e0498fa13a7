"""Server-wide PostgreSQL tools: scale max_connections, VACUUM, restart."""

from __future__ import annotations

import time
from typing import Annotated, Any

import psycopg
from psycopg import sql
from pydantic import Field

from opsgraph.tools.inventory import Resource
from opsgraph.tools.postgres_tools.connection import connect
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError

# Plain (unquoted) identifiers, optionally schema-qualified, for VACUUM targets.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_TABLE = rf"^{_IDENT}(\.{_IDENT})?$"


# ---- postgres_scale_connections


class PostgresScaleConnectionsArgs(ToolArgs):
    max_connections: Annotated[
        int, Field(ge=10, le=10_000, description="New max_connections; must exceed current usage")
    ]


def connections_ceiling(args: PostgresScaleConnectionsArgs, resource: Resource) -> str | None:
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
    if (problem := connections_ceiling(args, resource)) is not None:
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
