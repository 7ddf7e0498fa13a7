"""The connection every PostgreSQL tool uses, and how OpsGraph's own sessions are named."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from opsgraph.tools.connections import postgres_conninfo
from opsgraph.tools.inventory import Resource
from opsgraph.tools.spec import ToolError

# How OpsGraph's own sessions are named; sessions with this prefix are never terminated.
OWN_PREFIX = "opsgraph"
APPLICATION_NAME = "opsgraph-tools"
# Every statement a tool sends is cut off after this (VACUUM has its own argument).
STATEMENT_TIMEOUT_MS = 15_000


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
