"""Fault: Redis memory pressure. Writes ~1 MiB ballast values until the asked size or OOM.

Values are just under 1 MiB so that each costs Redis about 1 MiB (a value of
exactly 1 MiB plus its header would land in jemalloc's 1.25 MiB size class), and
``used_memory`` rises by about what was asked. With ``maxmemory`` and the
``noeviction`` policy, Redis refuses writes once full.

Full must mean full for the app's small cart writes too, or they slip into the
last few kilobytes. So:

- the megabyte values go through a connection of their own, closed afterwards
  (Redis keeps a megabyte query buffer for such a connection and frees it later);
- the app's usual client then tops Redis up with ever smaller values until even a
  tiny one is refused;
- while the fault lasts, a watcher refills any slack under 1 MiB that opens later
  (client buffers shrinking, cache entries expiring), as an ongoing leak would.
  Bigger room is left alone: when someone raises ``maxmemory`` or deletes keys,
  the remedy works.

From then on cart writes fail with ``redis_oom``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from shop.errors import oom_text
from shop.logs import log_event

KEY_PREFIX = "shop:ballast:"
MAX_SIZE_MB = 4096
CHUNK_BYTES = 1024 * 1024 - 1024
# Value sizes used to fill the last megabyte once a full chunk is refused (kept
# under Redis's 32 KiB "big argument" size, which gets a query buffer of its own).
_TOP_UP_BYTES = (16 * 1024, 1024, 64, 16)
_MIB = 1024 * 1024
_KEEP_FULL_WINDOW = _MIB
_KEEP_FULL_EVERY_S = 0.25
_DELETE_BATCH = 500


class RedisBallast:
    def __init__(self, client: Redis, redis_url: str) -> None:
        self._client = client
        self._redis_url = redis_url
        self._lock = asyncio.Lock()
        self._payload = b"x" * CHUNK_BYTES
        # Per process, so that two app processes sharing a Redis never overwrite each other.
        self._prefix = f"{KEY_PREFIX}{os.getpid()}:"
        self._next = 0
        self._keys = 0
        self._keeper: asyncio.Task[None] | None = None

    async def fill(self, size_mb: int) -> dict[str, Any]:
        async with self._lock:
            written, refusal = 0, None
            bulk = Redis.from_url(self._redis_url, socket_connect_timeout=1.0, socket_timeout=5.0)
            try:
                for _ in range(size_mb):
                    refusal = await self._write(bulk, CHUNK_BYTES)
                    if refusal is not None:
                        break
                    written += CHUNK_BYTES
            finally:
                await bulk.aclose()
            if refusal is not None:
                written += await self._top_up()
                if self._keeper is None or self._keeper.done():
                    self._keeper = asyncio.create_task(self._keep_full(), name="shop-ballast-keeper")
        result = {
            "fault": "redis_ballast",
            "requested_mb": size_mb,
            "written_mb": round(written / _MIB, 2),
            "keys_held": self._keys,
            "stopped_by_oom": refusal is not None,
            "error": refusal,
        }
        log_event(logging.WARNING, "fault_injected", **result)
        return result

    async def clear(self) -> dict[str, Any]:
        """Delete every ``shop:ballast:*`` key (any process's: the prefix is reserved for this)."""
        await self._stop_keeper()
        async with self._lock:
            deleted = 0
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=f"{KEY_PREFIX}*", count=_DELETE_BATCH):
                batch.append(key)
                if len(batch) >= _DELETE_BATCH:
                    deleted += await self._client.unlink(*batch)
                    batch = []
            if batch:
                deleted += await self._client.unlink(*batch)
            self._keys = 0
        result = {"fault": "redis_ballast", "deleted_keys": deleted}
        if deleted:
            log_event(logging.INFO, "fault_reset", **result)
        return result

    def status(self) -> dict[str, Any]:
        return {
            "keys_held": self._keys,
            "keeping_full": self._keeper is not None and not self._keeper.done(),
        }

    async def _write(self, client: Redis, size: int) -> str | None:
        """Write one ballast value; the refusal text if Redis is out of memory, else None."""
        try:
            await client.set(f"{self._prefix}{self._next}", self._payload[:size])
        except redis.exceptions.OutOfMemoryError as error:
            return oom_text(error)
        self._next += 1
        self._keys += 1
        return None

    async def _top_up(self) -> int:
        written = 0
        for size in _TOP_UP_BYTES:
            while await self._write(self._client, size) is None:
                written += size
        return written

    async def _keep_full(self) -> None:
        """Refill small slack while the fault lasts (see the module docstring)."""
        paused = False
        while True:
            await asyncio.sleep(_KEEP_FULL_EVERY_S)
            try:
                memory = await self._client.info("memory")
                free = int(memory["maxmemory"]) - int(memory["used_memory"])
                if int(memory["maxmemory"]) and 0 < free <= _KEEP_FULL_WINDOW:
                    async with self._lock:
                        await self._top_up()
            except redis.exceptions.RedisError as error:
                # Redis down or restarted: a restarted Redis is empty, so the watcher
                # will find plenty of room and leave it alone.
                if not paused:
                    log_event(logging.INFO, "fault_keeper_paused", fault="redis_ballast", error=str(error))
                paused = True
                await asyncio.sleep(1.0)
            else:
                paused = False

    async def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.wait([keeper])  # let it finish unwinding, without raising its CancelledError
