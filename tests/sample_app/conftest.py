"""Real servers for the sample app: private PostgreSQL and Redis, and the app under uvicorn.

One stack and one app serve the whole folder (starting them is most of the
cost); tests that inject faults reset them afterwards (the ``clean`` fixture).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from shop_support import REDIS_MAXMEMORY_MB, AppLauncher, Shop, port_of, postgres_resource
from support import Stack, free_port, redis_resource, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("shop-stack")
    resources = [postgres_resource(free_port()), redis_resource(maxmemory_mb=REDIS_MAXMEMORY_MB)]
    with running_stack(folder, resources) as running:
        yield running


@pytest.fixture(scope="session")
def launcher(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppLauncher]:
    apps = AppLauncher(stack, tmp_path_factory.mktemp("shop-app"))
    try:
        yield apps
    finally:
        apps.stop_all()


@pytest.fixture(scope="session")
def shop(launcher: AppLauncher) -> Shop:
    return launcher.start("shop")


@pytest.fixture(scope="session")
def pg(stack: Stack) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """An administrator's session on the shop database (it holds one connection slot)."""
    with psycopg.connect(
        host="127.0.0.1", port=port_of(stack, "db"), user="postgres", dbname="shop", autocommit=True
    ) as conn:
        yield conn


@pytest.fixture(scope="session")
def cache(stack: Stack) -> Iterator[redis.Redis]:
    # No retries: a test that shuts Redis down must not wait for redis-py to reconnect.
    client = redis.Redis(host="127.0.0.1", port=port_of(stack, "cache"), retry=Retry(NoBackoff(), 0))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def clean(shop: Shop, stack: Stack) -> Iterator[None]:
    """Reset every injected fault after the test, and check that the app is healthy again."""
    yield
    stack.local.up()  # restarts Redis if a test stopped it
    shop.http.post("/load/reset").raise_for_status()
    deadline = time.monotonic() + 15
    while shop.http.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "the app did not recover after the reset"
        time.sleep(0.1)
