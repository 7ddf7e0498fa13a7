"""PostgreSQL access: a connection per request, capped by a psycopg pool; queries timed and named.

The pool is psycopg's *null* pool: it caps concurrent connections at
``SHOP_DB_POOL_MAX`` and queues requests beyond that for ``SHOP_DB_POOL_TIMEOUT_S``,
but opens a fresh connection for each request and closes it afterwards (as
Django does by default). So the shop holds no connection slots at rest, and when
the server's slots run out its users see it at once (``database_too_many_connections``)
instead of whenever a long-lived pool happens to need a new connection.

Every query goes through :meth:`Database.fetch` / :meth:`Database.execute` with a
short name, so a slow one is logged as ``slow_query`` with that name and its
duration, and counted in ``shop_errors_total{cause="slow_query"}``. Each
connection carries a ``statement_timeout``: a query stuck behind a lock fails
(and the request answers 503) instead of hanging forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg_pool import AsyncNullConnectionPool, PoolTimeout

from shop.errors import ConnectAttempts, Reporter
from shop.settings import Settings

# How the app's own sessions appear in pg_stat_activity.application_name.
APPLICATION_NAME = "shop"
_STARTUP_RETRY_S = 0.5

Connection = AsyncConnection[TupleRow]
Params = Sequence[Any] | dict[str, Any]


def _observed_connection_class(attempts: ConnectAttempts) -> type[Connection]:
    """A connection class that tells ``attempts`` whether each connect worked.

    A request queued behind a full pool can time out while the pool fails to
    connect on its behalf; this is where the reason (e.g. "too many clients")
    can be seen, so the timeout can be reported with its real cause.
    """

    class ObservedConnection(AsyncConnection[TupleRow]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                connection = await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError as error:
                attempts.failed(error)
                raise
            attempts.succeeded()
            return connection

    return ObservedConnection


class Database:
    """The shop's connection pool; built unopened, opened by the app's lifespan."""

    def __init__(self, settings: Settings, attempts: ConnectAttempts, reporter: Reporter) -> None:
        self.attempts = attempts
        self._slow_ms = settings.slow_query_ms
        self._reporter = reporter
        self.pool: AsyncNullConnectionPool[Connection] = AsyncNullConnectionPool(
            conninfo=settings.database_url,
            max_size=settings.db_pool_max,
            timeout=settings.db_pool_timeout_s,
            kwargs={
                "application_name": APPLICATION_NAME,
                "options": f"-c statement_timeout={settings.statement_timeout_ms}",
                "connect_timeout": max(1, round(settings.db_pool_timeout_s)),
            },
            connection_class=_observed_connection_class(attempts),
            open=False,
            name="shop",
        )

    async def open(self, timeout_s: float) -> None:
        """Open the pool and wait until PostgreSQL accepts a connection (retrying for ``timeout_s``).

        Raises the last connection error (a psycopg.OperationalError) if it never does.
        """
        await self.pool.open()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with self.pool.connection():
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() + _STARTUP_RETRY_S >= deadline:
                    raise psycopg.OperationalError(f"no connection within {timeout_s:.0f} s: {error}") from error
                await asyncio.sleep(_STARTUP_RETRY_S)

    async def close(self) -> None:
        await self.pool.close(timeout=5.0)

    def stats(self) -> dict[str, int]:
        return self.pool.get_stats()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; committed on success, rolled back on error, then returned.

        A PoolTimeout is re-raised with the pool's state in its message: how many
        connections are busy and how many requests queue for one.
        """
        try:
            conn = await self.pool.getconn()
        except PoolTimeout as error:
            stats = self.pool.get_stats()
            raise PoolTimeout(
                f"{error} (pool: {stats.get('pool_size', 0)} of {stats.get('pool_max', 0)} connections busy,"
                f" {stats.get('requests_waiting', 0)} requests waiting)"
            ) from error
        try:
            async with conn:
                yield conn
        finally:
            await self.pool.putconn(conn)

    async def fetch(self, conn: Connection, name: str, query: str, params: Params | None = None) -> list[DictRow]:
        """Run a query that returns rows, as dicts."""
        async with conn.cursor(row_factory=dict_row) as cursor:
            await self._timed(cursor, name, query, params)
            return await cursor.fetchall()

    async def execute(self, conn: Connection, name: str, query: str, params: Params | None = None) -> int:
        """Run a statement; returns the number of rows it touched."""
        async with conn.cursor() as cursor:
            await self._timed(cursor, name, query, params)
            return cursor.rowcount

    async def _timed(self, cursor: AsyncCursor[Any], name: str, query: str, params: Params | None) -> None:
        started = time.perf_counter()
        # Only queries that complete are reported here; one cancelled by
        # statement_timeout surfaces as the request's slow_query error instead,
        # so each slow query is counted once.
        await cursor.execute(query, params)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > self._slow_ms:
            self._reporter.slow_query(name, elapsed_ms, self._slow_ms)
