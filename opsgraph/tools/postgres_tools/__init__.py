"""PostgreSQL tools, reached through `psycopg` as the inventory's `connection.user`.

Every statement is either constant SQL with bound parameters or composed with
`psycopg.sql` from validated identifiers; no argument is ever formatted into SQL.

The protections around terminating sessions are described and enforced in `sessions`.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.postgres_tools.connection import OWN_PREFIX, connect
from opsgraph.tools.postgres_tools.info import PostgresInfoArgs, postgres_info, read_postgres_info
from opsgraph.tools.postgres_tools.server import (
    postgres_restart,
    postgres_scale_connections,
    postgres_vacuum,
)
from opsgraph.tools.postgres_tools.sessions import (
    MAX_SESSIONS_PER_CALL,
    TERMINATE_SQL,
    PostgresKillArgs,
    kill_long_queries,
    postgres_kill_long_queries,
)
from opsgraph.tools.spec import ToolSpec

__all__ = [
    "MAX_SESSIONS_PER_CALL",
    "OWN_PREFIX",
    "TERMINATE_SQL",
    "TOOLS",
    "PostgresInfoArgs",
    "PostgresKillArgs",
    "connect",
    "kill_long_queries",
    "read_postgres_info",
]

TOOLS: list[ToolSpec[Any]] = [
    postgres_info,
    postgres_kill_long_queries,
    postgres_scale_connections,
    postgres_vacuum,
    postgres_restart,
]
