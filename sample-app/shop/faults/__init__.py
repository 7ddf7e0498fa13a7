"""Failure injection: real faults in the shop's own dependencies, each with its reset.

State lives in this process (run one uvicorn worker); everything injected is
released by :meth:`Faults.reset`, which the app also calls on shutdown.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import psycopg
import redis.exceptions
from redis.asyncio import Redis

from shop.faults.ballast import RedisBallast
from shop.faults.connections import HeldConnections
from shop.faults.cpu import CpuBurn
from shop.faults.locks import LockContention


class Faults:
    def __init__(self, database_url: str, redis_url: str, redis_client: Redis) -> None:
        self.connections = HeldConnections(database_url)
        self.blocking = LockContention(database_url)
        self.ballast = RedisBallast(redis_client, redis_url)
        self.cpu = CpuBurn()

    def status(self) -> dict[str, Any]:
        return {
            "database_connections": self.connections.status(),
            "database_blocking": self.blocking.status(),
            "redis_ballast": self.ballast.status(),
            "cpu": self.cpu.status(),
        }

    async def reset(self) -> dict[str, Any]:
        """Release every fault; one failing reset (Redis down, say) does not stop the others."""
        results: dict[str, Any] = {"cpu": await self.cpu.stop()}
        results["database_blocking"] = await _attempt(self.blocking.release())
        results["database_connections"] = await _attempt(self.connections.release())
        results["redis_ballast"] = await _attempt(self.ballast.clear())
        return results


async def _attempt(reset: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        result = await reset
    except (psycopg.Error, redis.exceptions.RedisError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return result
