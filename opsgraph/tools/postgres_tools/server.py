"""Server-wide PostgreSQL tools: scale max_connections, VACUUM, restart."""

from __future__ import annotations

import time
from typing import Annotated, Any

import psycopg
from psycopg import sql
from pydantic import Field

from opsgraph.tools.environments.external import restart_refusal
from opsgraph.tools.identity import server_identity
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools.connection import connect
from opsgraph.tools.probes.postgres_config import CAN_READ_SQL
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, above_ceiling, declare

# Plain (unquoted) identifiers, optionally schema-qualified, for VACUUM targets.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_TABLE = rf"^{_IDENT}(\.{_IDENT})?$"


# ---- postgres_scale_connections


class PostgresScaleConnectionsArgs(ToolArgs):
    max_connections: Annotated[
        int, Field(ge=10, le=10_000, description="New max_connections; must exceed current usage")
    ]


def connections_ceiling(args: PostgresScaleConnectionsArgs, resource: Resource) -> str | None:
    return above_ceiling("max_connections", args.max_connections, resource.policy.max_connections)


# Client backends (this one included) and the slots ordinary roles may not use.
_USAGE = (
    "SELECT current_setting('max_connections')::int AS max,"
    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,"
    " current_setting('superuser_reserved_connections')::int"
    " + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved"
)
# The value postgresql.auto.conf holds now (ALTER SYSTEM's file), so that an undo restores exactly that.
_AUTO_CONF = (
    "SELECT setting FROM pg_file_settings WHERE name = 'max_connections'"
    " AND sourcefile = current_setting('data_directory') || '/postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1"
)


def _current_max_connections(resource: Resource) -> tuple[int, int, int]:
    """max_connections, the client connections in use, and the reserved slots."""
    with connect(resource) as conn:
        row = conn.execute(_USAGE).fetchone()
    assert row is not None
    return int(row["max"]), int(row["used"]), int(row["reserved"])


def _alter_system(conn: psycopg.Connection[Any], value: int | str | None) -> None:
    """ALTER SYSTEM SET max_connections = value, or RESET it when value is None."""
    if value is None:
        conn.execute("ALTER SYSTEM RESET max_connections")
    else:
        # A utility statement takes no bound parameters; the value goes in as a Literal.
        conn.execute(sql.SQL("ALTER SYSTEM SET max_connections = {}").format(sql.Literal(str(value))))


def _apply(resource: Resource, wanted: int) -> tuple[bool, str | None]:
    """ALTER SYSTEM SET max_connections; returns whether postgresql.auto.conf could be read and what it held."""
    with connect(resource) as conn:
        allowed = conn.execute(CAN_READ_SQL).fetchone()
        readable = allowed is not None and bool(allowed["allowed"])
        row = conn.execute(_AUTO_CONF).fetchone() if readable else None
        try:
            _alter_system(conn, wanted)
        except psycopg.errors.InsufficientPrivilege as error:
            raise ToolError(
                f"{resource.name}: {str(error).strip()}; ALTER SYSTEM needs a superuser or "
                "GRANT ALTER SYSTEM ON PARAMETER max_connections to the inventory's connection.user"
            ) from None
    return readable, None if row is None else str(row["setting"])


def _undo(resource: Resource, readable: bool, before: str | None, previous: int) -> str:
    """Put postgresql.auto.conf back as it was; returns what was done, for the error message."""
    restored: str | None = before if readable else str(previous)
    try:
        with connect(resource) as conn:
            _alter_system(conn, restored)
    except (ToolError, psycopg.Error) as error:
        return (
            f"undoing the ALTER SYSTEM failed too ({str(error).strip()}): postgresql.auto.conf still sets "
            "max_connections; run ALTER SYSTEM RESET max_connections (or set it back) before the next restart"
        )
    if restored is None:
        return "the ALTER SYSTEM was undone (RESET max_connections: postgresql.auto.conf no longer sets it)"
    return f"the ALTER SYSTEM was undone (max_connections in postgresql.auto.conf set back to {restored})"


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.POSTGRES,
    idempotent=True,
    undo="postgres_scale_connections with max_connections = previous_max_connections from the result",
    check_limits=connections_ceiling,
)
def postgres_scale_connections(args: PostgresScaleConnectionsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set max_connections with ALTER SYSTEM and restart the server (drops every session); refused before
    any change where the environment cannot restart it, and undone when the restart fails.

    A setting that needs a restart must not outlive a restart that failed: it would take effect,
    unasked, at the next one. So the tool refuses before changing anything when the environment
    cannot restart this server, and undoes the ALTER SYSTEM when the restart fails.
    """
    resource = ctx.resource(args.resource)
    if (problem := connections_ceiling(args, resource)) is not None:
        raise ToolError(problem)
    # First: an environment without a (declared) restart must fail before anything changes.
    lifecycle = ctx.lifecycle(resource)
    if (refusal := restart_refusal(resource)) is not None:
        raise ToolError(f"{refusal}; max_connections only changes at a restart, so nothing was changed")
    previous, used, reserved = _current_max_connections(resource)
    if args.max_connections <= used + reserved:
        raise ToolError(
            f"max_connections {args.max_connections} is not above the {used} connections in use plus the "
            f"{reserved} slots reserved for superusers; refusing to make the pressure worse"
        )
    readable, before = _apply(resource, args.max_connections)
    began = time.monotonic()
    try:
        status = lifecycle.restart(resource.name)
    except Exception as error:  # any environment's failure: the change must not stay behind
        undone = _undo(resource, readable, before, previous)
        raise ToolError(f"the restart of {resource.name} failed ({error}); {undone}") from error
    now, _, _ = _current_max_connections(resource)
    if now != args.max_connections:
        undone = _undo(resource, readable, before, previous)
        raise ToolError(
            f"after the restart max_connections is {now}, not {args.max_connections}: "
            f"a setting on the command line or in a later file overrides postgresql.auto.conf; {undone}"
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


@declare(risk=Risk.SAFE, target=ResourceKind.POSTGRES, idempotent=True)
def postgres_vacuum(args: PostgresVacuumArgs, ctx: ToolContext) -> dict[str, Any]:
    """VACUUM (ANALYZE) one table or the whole database; keeps all data.

    It frees dead rows for reuse and refreshes the planner's statistics.
    """
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


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.POSTGRES, idempotent=False, observe=server_identity)
def postgres_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart the PostgreSQL server through its environment; every session is dropped.

    In-flight transactions are rolled back with them.
    """
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}
