"""The product cache in Redis (cache-aside, with a TTL), and the shop's Redis client.

A cache is an optimisation, so when Redis fails (out of memory, unreachable) a
product read falls back to PostgreSQL and still answers; the failure is counted
and logged all the same, so it is never invisible. Carts, which live only in
Redis, do fail the request (see ``shop.carts``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import redis.exceptions
from redis.asyncio import Redis

from shop.errors import Reporter, classify
from shop.models import Product
from shop.settings import Settings

KEY_PREFIX = "shop:product:"


def open_redis(settings: Settings) -> Redis:
    """The app's Redis client. Short timeouts: a dead Redis must fail a request, not hang it."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=15,
        client_name="shop",
    )


class ProductCache:
    def __init__(self, client: Redis, ttl_s: int, reporter: Reporter) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._reporter = reporter

    async def get_or_load(self, product_id: int, load: Callable[[], Awaitable[Product | None]]) -> Product | None:
        """The cached product, else ``load()``'s answer (cached when found)."""
        key = f"{KEY_PREFIX}{product_id}"
        try:
            cached = await self._client.get(key)
        except redis.exceptions.RedisError as error:
            self._degraded(error, "product_cache_get")
            return await load()
        if cached is not None:
            return Product.model_validate_json(cached)
        product = await load()
        if product is not None:
            try:
                await self._client.set(key, product.model_dump_json(), ex=self._ttl_s)
            except redis.exceptions.RedisError as error:
                self._degraded(error, "product_cache_set")
        return product

    async def invalidate(self, product_ids: Iterable[int]) -> None:
        """Forget products whose stock changed; a failure leaves them stale for at most the TTL."""
        keys = [f"{KEY_PREFIX}{product_id}" for product_id in product_ids]
        if not keys:
            return
        try:
            await self._client.delete(*keys)
        except redis.exceptions.RedisError as error:
            self._degraded(error, "product_cache_invalidate")

    def _degraded(self, error: redis.exceptions.RedisError, operation: str) -> None:
        self._reporter.failure(classify(error), operation=operation, degraded=True)
