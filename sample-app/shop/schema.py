"""The shop's tables and its seed catalogue, created at startup when missing.

Idempotent and safe when several app processes start at once: the work runs in
one transaction under an advisory lock, tables use ``IF NOT EXISTS``, and
products are seeded only into an empty table (so stock sold stays sold across
restarts).
"""

from __future__ import annotations

from itertools import product as cartesian

from shop.db import Database

# An arbitrary constant: the key of the advisory lock that serialises schema setup.
_SCHEMA_LOCK = 7_460_163

_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS products (
        id          serial  PRIMARY KEY,
        name        text    NOT NULL UNIQUE,
        price_cents integer NOT NULL CHECK (price_cents >= 0),
        stock       integer NOT NULL CHECK (stock >= 0)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS orders (
        id          bigserial   PRIMARY KEY,
        user_name   text        NOT NULL,
        total_cents bigint      NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS order_items (
        order_id    bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        product_id  integer NOT NULL REFERENCES products (id),
        quantity    integer NOT NULL CHECK (quantity > 0),
        price_cents integer NOT NULL,
        PRIMARY KEY (order_id, product_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS orders_user_name ON orders (user_name)",
)

_ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Rugged", "Vintage")
_NOUNS = ("Backpack", "Coffee Mug", "Desk Lamp", "Headphones", "Notebook", "Water Bottle")


def seed_products() -> list[tuple[str, int, int]]:
    """36 products as (name, price_cents, stock): deterministic, so demos are repeatable."""
    rows = []
    for index, (adjective, noun) in enumerate(cartesian(_ADJECTIVES, _NOUNS)):
        price_cents = 499 + (index * 737) % 9000
        stock = 20 + (index * 37) % 180
        rows.append((f"{adjective} {noun}", price_cents, stock))
    return rows


async def ensure_schema(db: Database) -> int:
    """Create missing tables and seed an empty catalogue; returns how many products were seeded."""
    async with db.connection() as conn, conn.transaction():
        await db.execute(conn, "schema_lock", "SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for statement in _TABLES:
            await db.execute(conn, "create_schema", statement)
        existing = await db.fetch(conn, "count_products", "SELECT count(*) AS n FROM products")
        if existing[0]["n"]:
            return 0
        seeds = seed_products()
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO products (name, price_cents, stock) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                seeds,
            )
        return len(seeds)
