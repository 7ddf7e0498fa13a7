"""Reading products: the list straight from PostgreSQL, single products through the cache."""

from __future__ import annotations

from collections.abc import Collection

from psycopg.rows import DictRow

from shop.cache import ProductCache
from shop.db import Database
from shop.models import Product

_COLUMNS = "id, name, price_cents, stock"


def _product(row: DictRow) -> Product:
    return Product.model_validate(row)


class Catalog:
    def __init__(self, db: Database, cache: ProductCache) -> None:
        self._db = db
        self._cache = cache

    async def all(self) -> list[Product]:
        async with self._db.connection() as conn:
            rows = await self._db.fetch(conn, "list_products", f"SELECT {_COLUMNS} FROM products ORDER BY id")
        return [_product(row) for row in rows]

    async def get(self, product_id: int) -> Product | None:
        """One product, from the cache when it has it (so its stock may lag by the TTL)."""
        return await self._cache.get_or_load(product_id, lambda: self._load(product_id))

    async def many(self, product_ids: Collection[int]) -> dict[int, Product]:
        """Fresh rows for several products (missing ids are simply absent)."""
        if not product_ids:
            return {}
        async with self._db.connection() as conn:
            rows = await self._db.fetch(
                conn, "get_products", f"SELECT {_COLUMNS} FROM products WHERE id = ANY(%s)", (list(product_ids),)
            )
        return {row["id"]: _product(row) for row in rows}

    async def forget(self, product_ids: Collection[int]) -> None:
        """Drop cached copies of products whose stock just changed."""
        await self._cache.invalidate(product_ids)

    async def _load(self, product_id: int) -> Product | None:
        async with self._db.connection() as conn:
            rows = await self._db.fetch(
                conn, "get_product", f"SELECT {_COLUMNS} FROM products WHERE id = %s", (product_id,)
            )
        return _product(rows[0]) if rows else None
