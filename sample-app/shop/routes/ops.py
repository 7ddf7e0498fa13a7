"""Operations endpoints: health (for load balancers and OpsGraph) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import redis.exceptions
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from shop.errors import Failure, classify
from shop.logs import log_event
from shop.metrics import CONTENT_TYPE
from shop.services import Services, ServicesDep

router = APIRouter(tags=["operations"])


async def _check_database(services: Services) -> Failure | None:
    try:
        async with services.db.connection() as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error as error:  # PoolTimeout included
        return classify(error, services.db.attempts)
    return None


async def _check_redis(services: Services) -> Failure | None:
    try:
        await services.redis.ping()
    except redis.exceptions.RedisError as error:
        return classify(error)
    return None


@router.get("/health", response_model=None)
async def health(services: ServicesDep) -> dict[str, Any] | JSONResponse:
    """200 when PostgreSQL and Redis both answer; otherwise 503 naming which one failed and why.

    Health probes are not counted in shop_errors_total (their rate depends on who
    polls), but each failure is logged as ``health_check_failed``.
    """
    database, cache = await asyncio.gather(_check_database(services), _check_redis(services))
    failures = {name: failure for name, failure in (("database", database), ("redis", cache)) if failure}
    body: dict[str, Any] = {
        "status": "error" if failures else "ok",
        "database": "error" if database else "ok",
        "redis": "error" if cache else "ok",
    }
    if not failures:
        return body
    body["errors"] = {name: {"cause": f.cause.value, "error": f.error} for name, f in failures.items()}
    for name, failure in failures.items():
        log_event(
            logging.WARNING, "health_check_failed", dependency=name, cause=failure.cause.value, error=failure.error
        )
    return JSONResponse(body, status_code=503)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    return Response(content=services.metrics.render(), media_type=CONTENT_TYPE)
