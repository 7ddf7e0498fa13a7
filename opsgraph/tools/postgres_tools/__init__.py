"""PostgreSQL tools, reached through `psycopg` as the inventory's `connection.user`.

Every statement is either constant SQL with bound parameters or composed with
`psycopg.sql` from validated identifiers; no argument is ever formatted into SQL.

The protections around terminating sessions are described and enforced in `sessions`.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.inventory import ResourceKind
from opsgraph.tools.postgres_tools.connection import OWN_PREFIX, connect
from opsgraph.tools.postgres_tools.info import PostgresInfoArgs, postgres_info
from opsgraph.tools.postgres_tools.server import (
    PostgresScaleConnectionsArgs,
    PostgresVacuumArgs,
    connections_ceiling,
    postgres_restart,
    postgres_scale_connections,
    postgres_vacuum,
    restart_refusal,
)
from opsgraph.tools.postgres_tools.sessions import (
    MAX_SESSIONS_PER_CALL,
    TERMINATE_SQL,
    PostgresKillArgs,
    postgres_kill_long_queries,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolSpec

__all__ = [
    "MAX_SESSIONS_PER_CALL",
    "OWN_PREFIX",
    "TERMINATE_SQL",
    "TOOLS",
    "PostgresKillArgs",
    "connect",
    "restart_refusal",
]

TOOLS: list[ToolSpec[Any]] = [
    ToolSpec(
        name="postgres_info",
        description=(
            "Read PostgreSQL client connections vs the ordinary slots (max_connections minus reserved), by state, "
            "application and user; long-running queries, blocked queries with their blockers, lock counts, "
            "database sizes and configuration lines the server would reject."
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
            "Terminate client sessions matching filters (state, min_duration_s, user, database, application_name "
            "('' = none set), blockers_only), oldest first, at most max_sessions; never superuser, walsender or "
            "OpsGraph sessions."
        ),
        args_model=PostgresKillArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.DISRUPTIVE,
        run=postgres_kill_long_queries,
        idempotent=True,
    ),
    ToolSpec(
        name="postgres_scale_connections",
        description=(
            "Set max_connections with ALTER SYSTEM and restart the server (drops every session); refused before "
            "any change where the environment cannot restart it, and undone when the restart fails."
        ),
        args_model=PostgresScaleConnectionsArgs,
        target_kind=ResourceKind.POSTGRES,
        risk=Risk.DISRUPTIVE,
        run=postgres_scale_connections,
        idempotent=True,
        undo="postgres_scale_connections with max_connections = previous_max_connections from the result",
        check_limits=connections_ceiling,
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
