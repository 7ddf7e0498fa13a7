"""The app factory: ``uvicorn shop.app:create_app --factory``.

``create_app`` only reads settings and wires objects; connecting happens in the
lifespan, at server start, where a failure stops the server with a clear log
line. Shutdown releases every injected fault before closing the pool and Redis.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI

from shop.cache import ProductCache, open_redis
from shop.carts import Carts
from shop.catalog import Catalog
from shop.db import Database
from shop.errors import ConnectAttempts, Reporter, classify
from shop.faults import Faults
from shop.logs import configure_logging, log_event, redact, url_passwords
from shop.metrics import Metrics
from shop.middleware import RequestObserver
from shop.routes import faults, ops, shop
from shop.schema import ensure_schema
from shop.services import Services
from shop.settings import Settings, SettingsError

# How long startup waits for PostgreSQL before giving up.
STARTUP_TIMEOUT_S = 10.0


class StartupError(RuntimeError):
    """A dependency the shop cannot start without did not answer."""


def create_app() -> FastAPI:
    configure_logging()
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        log_event(logging.CRITICAL, "startup_failed", error=str(error))
        raise
    secrets = url_passwords(settings.database_url, settings.redis_url)
    if pg_password := os.environ.get("PGPASSWORD"):  # libpq's own variable, used by docker-compose.yml
        secrets.add(pg_password)
    configure_logging(secrets=secrets, log_file=settings.log_file)
    metrics = Metrics()
    reporter = Reporter(metrics)
    attempts = ConnectAttempts()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await _start(settings, metrics, reporter, attempts)
        app.state.services = services
        try:
            yield
        finally:
            released = await services.faults.reset()
            await services.redis.aclose()
            await services.db.close()
            log_event(logging.INFO, "shutdown", released=released)

    app = FastAPI(
        title="shop",
        summary="The sample e-commerce API that OpsGraph looks after, with failure injection.",
        lifespan=lifespan,
    )
    app.add_middleware(RequestObserver, metrics=metrics, reporter=reporter, attempts=attempts)
    app.include_router(shop.router)
    app.include_router(ops.router)
    app.include_router(faults.router)
    metrics.watch_pool(lambda: _pool_stats(app))
    return app


async def _start(settings: Settings, metrics: Metrics, reporter: Reporter, attempts: ConnectAttempts) -> Services:
    db = Database(settings, attempts, reporter)
    try:
        await db.open(STARTUP_TIMEOUT_S)
    except psycopg.OperationalError as error:
        await db.close()
        reason = classify(error, attempts).error
        log_event(logging.CRITICAL, "startup_failed", dependency="database", error=reason)
        raise StartupError(f"PostgreSQL is not usable: {reason}") from None
    seeded = await ensure_schema(db)
    client = open_redis(settings)
    log_event(
        logging.INFO,
        "startup",
        database=redact(settings.database_url),
        redis=redact(settings.redis_url),
        seeded_products=seeded,
        db_pool_max=settings.db_pool_max,
        db_pool_timeout_s=settings.db_pool_timeout_s,
        slow_query_ms=settings.slow_query_ms,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    return Services(
        settings=settings,
        metrics=metrics,
        reporter=reporter,
        db=db,
        redis=client,
        catalog=Catalog(db, ProductCache(client, settings.cache_ttl_s, reporter)),
        carts=Carts(client),
        faults=Faults(settings.database_url, settings.redis_url, client),
    )


def _pool_stats(app: FastAPI) -> dict[str, int]:
    services: Services | None = getattr(app.state, "services", None)
    return services.db.stats() if services is not None else {}
