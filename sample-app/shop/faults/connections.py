"""Fault: extra PostgreSQL sessions opened outside the pool and left idle (a connection leak).

They count against the server's ``max_connections`` like any leaked session.
When the server refuses some of the sessions asked for, a background thread
keeps asking, as a leaking client in a retry loop would, and takes every slot
that frees up until it holds them all or the fault is reset. The shop opens a
connection per request, so once the slots are gone its requests fail with
``database_too_many_connections``.

The sessions show in ``pg_stat_activity`` as ``application_name =
'shop-load-connections'``, state ``idle``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import psycopg

from shop.logs import log_event

APPLICATION_NAME = "shop-load-connections"
MAX_CONNECTIONS = 1000
# How often the background thread retries while the server is full (each refused
# attempt costs the server a fork and a FATAL line in its log), and while it is down.
_RETRY_FULL_S = 0.1
_RETRY_DOWN_S = 1.0
_JOIN_S = 10.0


class HeldConnections:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._held: list[psycopg.Connection[Any]] = []
        self._wanted = 0  # sessions asked for but not yet obtained
        self._guard = threading.Lock()  # _held and _wanted, shared with the claiming thread
        self._stop = threading.Event()
        self._claimer: threading.Thread | None = None
        self._lock = asyncio.Lock()

    async def open(self, count: int) -> dict[str, Any]:
        """Open ``count`` more sessions now; any the server refuses are claimed as slots free up."""
        async with self._lock:
            opened, refusal = await asyncio.to_thread(self._open_now, count)
            if opened < count:
                with self._guard:
                    self._wanted += count - opened
                self._ensure_claiming()
        result = {
            "fault": "database_connections",
            "requested": count,
            "opened": opened,
            "limit_reached": refusal is not None,
            "error": refusal,
            **self.status(),
        }
        log_event(logging.WARNING, "fault_injected", **result)
        return result

    async def release(self) -> dict[str, Any]:
        async with self._lock:
            released = await asyncio.to_thread(self._release)
        result = {"fault": "database_connections", "released": released}
        if released:
            log_event(logging.INFO, "fault_reset", **result)
        return result

    def status(self) -> dict[str, Any]:
        with self._guard:
            return {
                "held": len(self._held),
                "pending": self._wanted,
                "pids": [conn.info.backend_pid for conn in self._held],
            }

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._database_url, application_name=APPLICATION_NAME, autocommit=True, connect_timeout=5
        )

    def _open_now(self, count: int) -> tuple[int, str | None]:
        for opened in range(count):
            try:
                conn = self._connect()
            except psycopg.OperationalError as error:
                return opened, str(error).strip()
            with self._guard:
                self._held.append(conn)
        return count, None

    def _ensure_claiming(self) -> None:
        if self._claimer is not None and self._claimer.is_alive():
            return
        self._stop.clear()
        self._claimer = threading.Thread(target=self._claim, name="shop-load-connections", daemon=True)
        self._claimer.start()

    def _claim(self) -> None:
        """The background thread: take freed slots until every wanted session is held."""
        while not self._stop.is_set():
            with self._guard:
                if self._wanted <= 0:
                    return
            try:
                conn = self._connect()
            except psycopg.OperationalError as error:
                full = "too many clients" in str(error) or "remaining connection slots" in str(error)
                self._stop.wait(_RETRY_FULL_S if full else _RETRY_DOWN_S)
                continue
            with self._guard:
                self._held.append(conn)
                self._wanted -= 1

    def _release(self) -> int:
        self._stop.set()
        if self._claimer is not None:
            self._claimer.join(timeout=_JOIN_S)  # at most one connect attempt in flight
        with self._guard:
            held, self._held, self._wanted = self._held, [], 0
        for conn in held:
            conn.close()
        return len(held)
