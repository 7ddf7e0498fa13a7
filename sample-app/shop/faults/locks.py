"""Fault: lock contention. One session holds ``products`` locked; others queue behind it.

The holder runs ``LOCK TABLE products IN ACCESS EXCLUSIVE MODE`` and then sits
``idle in transaction``; each waiter runs a plain ``SELECT`` on ``products`` from its
own thread and blocks (``wait_event_type = 'Lock'``, non-empty ``pg_blocking_pids``).
The app's own product queries queue too, until their ``statement_timeout`` cancels
them. The waiting happens in libpq, which releases the GIL, so neither the event
loop nor this endpoint is held up.

Sessions appear as ``shop-load-blocker`` and ``shop-load-blocked`` in
``pg_stat_activity.application_name``. Terminating the blocker's backend (the
classic remedy) releases everything, exactly as it would in production.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from shop.errors import FaultActive
from shop.logs import log_event

HOLDER_NAME = "shop-load-blocker"
WAITER_NAME = "shop-load-blocked"
LOCK_STATEMENT = "LOCK TABLE products IN ACCESS EXCLUSIVE MODE"
WAIT_STATEMENT = "SELECT count(*) FROM products"
MAX_WAITERS = 50
# The injected sessions must wait as long as the fault lasts, whatever the server's defaults.
_NO_TIMEOUTS = "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0"
_CONFIRM_S = 5.0
_JOIN_S = 5.0


@dataclass
class _Waiter:
    conn: psycopg.Connection[Any]
    pid: int  # kept: a closed connection no longer knows its backend pid
    thread: threading.Thread


@dataclass
class _Contention:
    holder: psycopg.Connection[Any]
    holder_pid: int
    waiters: list[_Waiter]
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def _wait(conn: psycopg.Connection[Any], pid: int) -> None:
    """A waiter's thread: block on the lock until it is released (or the session is killed)."""
    try:
        conn.execute(WAIT_STATEMENT)
    except psycopg.Error as error:
        # Expected when someone terminates or cancels the session to end the fault.
        log_event(logging.INFO, "fault_waiter_ended", pid=pid, error=str(error).strip())
    finally:
        conn.close()


class LockContention:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._state: _Contention | None = None
        self._lock = asyncio.Lock()

    async def start(self, count: int) -> dict[str, Any]:
        async with self._lock:
            if self._state is not None:
                raise FaultActive("lock contention is already injected; DELETE /load/database/blocking first")
            state, blocked, refusal = await asyncio.to_thread(self._start, count)
            self._state = state
        result = {
            "fault": "database_blocking",
            "lock": LOCK_STATEMENT,
            "holder_pid": state.holder_pid,
            "waiter_pids": [waiter.pid for waiter in state.waiters],
            "blocked_pids": blocked,
            "requested": count,
            "error": refusal,
        }
        log_event(logging.WARNING, "fault_injected", **result)
        return result

    async def release(self) -> dict[str, Any]:
        async with self._lock:
            state, self._state = self._state, None
            if state is None:
                return {"fault": "database_blocking", "released": False}
            holder_error, lingering = await asyncio.to_thread(self._release, state)
        result = {
            "fault": "database_blocking",
            "released": True,
            "waiters": len(state.waiters),
            "waiters_still_running": lingering,
            "holder_error": holder_error,
        }
        log_event(logging.INFO, "fault_reset", **result)
        return result

    def status(self) -> dict[str, Any] | None:
        state = self._state
        if state is None:
            return None
        return {
            "since": state.started_at,
            "holder_pid": state.holder_pid,
            "waiter_pids": [waiter.pid for waiter in state.waiters],
            "waiters_still_blocked": sum(waiter.thread.is_alive() for waiter in state.waiters),
        }

    def _connect(self, name: str, *, autocommit: bool) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._database_url, application_name=name, autocommit=autocommit, options=_NO_TIMEOUTS, connect_timeout=5
        )

    def _start(self, count: int) -> tuple[_Contention, list[int], str | None]:
        holder = self._connect(HOLDER_NAME, autocommit=False)
        try:
            holder.execute(LOCK_STATEMENT)  # opens the transaction that keeps the lock
        except psycopg.Error:
            holder.close()
            raise
        state = _Contention(holder, holder.info.backend_pid, [])
        refusal = None
        for index in range(count):
            try:
                conn = self._connect(WAITER_NAME, autocommit=True)
            except psycopg.OperationalError as error:
                refusal = str(error).strip()  # out of connection slots: fewer waiters, still a fault
                break
            pid = conn.info.backend_pid
            thread = threading.Thread(target=_wait, args=(conn, pid), name=f"shop-blocked-{index}", daemon=True)
            thread.start()
            state.waiters.append(_Waiter(conn, pid, thread))
        try:
            blocked = self._confirm_blocked(state)
        except psycopg.Error as error:
            # The holder died under us (terminated by someone?): keep the state so a
            # reset still joins the waiter threads and closes their sessions.
            blocked, refusal = [], f"could not confirm the waiters: {str(error).strip()}"
        return state, blocked, refusal

    @staticmethod
    def _confirm_blocked(state: _Contention) -> list[int]:
        """Wait until every waiter is queued on the lock, so callers can observe it at once.

        Asked through the holder: ``pg_blocking_pids`` reads the live lock table,
        unlike ``pg_stat_activity``, which is frozen for the length of a transaction.
        """
        pids = [waiter.pid for waiter in state.waiters]
        deadline = time.monotonic() + _CONFIRM_S
        blocked: list[int] = []
        while True:
            rows = state.holder.execute(
                "SELECT pid FROM unnest(%s::int[]) AS pid WHERE cardinality(pg_blocking_pids(pid)) > 0", (pids,)
            ).fetchall()
            blocked = sorted(row[0] for row in rows)
            if len(blocked) == len(pids) or time.monotonic() > deadline:
                return blocked
            time.sleep(0.02)

    @staticmethod
    def _release(state: _Contention) -> tuple[str | None, int]:
        """Roll the holder back (freeing the waiters, whose threads then close their sessions)."""
        holder_error = None
        try:
            state.holder.rollback()
        except psycopg.Error as error:
            holder_error = str(error).strip()  # e.g. already terminated: the lock is gone anyway
        finally:
            state.holder.close()
        for waiter in state.waiters:
            waiter.thread.join(timeout=_JOIN_S)
        lingering = [waiter for waiter in state.waiters if waiter.thread.is_alive()]
        for waiter in lingering:
            # Blocked by something other than our holder: cancel the query instead.
            waiter.conn.cancel_safe(timeout=2.0)
            waiter.thread.join(timeout=_JOIN_S)
        return holder_error, sum(waiter.thread.is_alive() for waiter in state.waiters)
