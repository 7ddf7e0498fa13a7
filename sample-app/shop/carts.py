"""Shopping carts: one Redis hash per user, product id -> quantity.

Carts exist only in Redis, so a Redis failure here fails the request (503 with
the cause), which is how an out-of-memory Redis shows up to users.
"""

from __future__ import annotations

from redis.asyncio import Redis

KEY_PREFIX = "shop:cart:"
# Abandoned carts expire instead of accumulating forever.
CART_TTL_S = 7 * 24 * 3600


def _key(user: str) -> str:
    return f"{KEY_PREFIX}{user}"


class Carts:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def add(self, user: str, product_id: int, quantity: int) -> None:
        # Two plain commands rather than MULTI: inside a transaction Redis reports
        # an out-of-memory refusal as a generic EXECABORT, hiding the real cause.
        await self._client.hincrby(_key(user), str(product_id), quantity)
        await self._client.expire(_key(user), CART_TTL_S)

    async def items(self, user: str) -> dict[int, int]:
        """Product id -> quantity (empty when the user has no cart)."""
        raw = await self._client.hgetall(_key(user))
        return {int(product_id): int(quantity) for product_id, quantity in raw.items()}

    async def clear(self, user: str) -> None:
        await self._client.delete(_key(user))
