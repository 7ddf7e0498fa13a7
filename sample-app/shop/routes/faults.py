"""Failure-injection endpoints (``/load``): each fault is real, observable in its target, and resettable.

When a dependency is too broken to inject into, the endpoint answers 503 itself
(an HTTPException), so that the failure is not counted as one the shop's users felt.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
import redis.exceptions
from fastapi import APIRouter, HTTPException, Query, status

from shop.errors import FaultActive
from shop.faults.ballast import MAX_SIZE_MB
from shop.faults.connections import MAX_CONNECTIONS
from shop.faults.cpu import MAX_DURATION_S, MAX_THREADS
from shop.faults.locks import MAX_WAITERS
from shop.services import ServicesDep

router = APIRouter(prefix="/load", tags=["failure injection"])


@router.get("")
async def injected(services: ServicesDep) -> dict[str, Any]:
    """What is injected right now."""
    return services.faults.status()


@router.post("/reset")
async def reset_all(services: ServicesDep) -> dict[str, Any]:
    return await services.faults.reset()


@router.post("/database")
async def hold_connections(
    services: ServicesDep, connections: Annotated[int, Query(ge=1, le=MAX_CONNECTIONS)]
) -> dict[str, Any]:
    return await services.faults.connections.open(connections)


@router.delete("/database")
async def release_connections(services: ServicesDep) -> dict[str, Any]:
    return await services.faults.connections.release()


@router.post("/database/blocking")
async def block_queries(
    services: ServicesDep, count: Annotated[int, Query(ge=1, le=MAX_WAITERS)] = 5
) -> dict[str, Any]:
    try:
        return await services.faults.blocking.start(count)
    except FaultActive as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except psycopg.OperationalError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot open the blocking session: {error}") from None


@router.delete("/database/blocking")
async def unblock_queries(services: ServicesDep) -> dict[str, Any]:
    return await services.faults.blocking.release()


@router.post("/redis")
async def fill_redis(services: ServicesDep, size_mb: Annotated[int, Query(ge=1, le=MAX_SIZE_MB)]) -> dict[str, Any]:
    try:
        return await services.faults.ballast.fill(size_mb)
    except redis.exceptions.RedisError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot write ballast: {error}") from None


@router.delete("/redis")
async def empty_redis(services: ServicesDep) -> dict[str, Any]:
    return await services.faults.ballast.clear()


@router.post("/cpu")
async def burn_cpu(
    services: ServicesDep,
    duration: Annotated[float, Query(gt=0, le=MAX_DURATION_S, description="seconds")] = 30.0,
    threads: Annotated[int, Query(ge=1, le=MAX_THREADS)] = 2,
) -> dict[str, Any]:
    try:
        return services.faults.cpu.start(duration, threads)
    except FaultActive as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


@router.delete("/cpu")
async def stop_cpu(services: ServicesDep) -> dict[str, Any]:
    return await services.faults.cpu.stop()
