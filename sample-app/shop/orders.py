"""Placing an order: one PostgreSQL transaction that checks and takes stock."""

from __future__ import annotations

from shop.db import Database
from shop.models import Order, OrderLine, Shortage


class EmptyCart(Exception):
    """The user has nothing to order."""


class UnknownProducts(Exception):
    """The cart names products that no longer exist."""

    def __init__(self, product_ids: list[int]) -> None:
        super().__init__(f"unknown products: {product_ids}")
        self.product_ids = product_ids


class InsufficientStock(Exception):
    """At least one product has less stock than the order asks for; nothing was taken."""

    def __init__(self, shortages: list[Shortage]) -> None:
        super().__init__(f"insufficient stock for {len(shortages)} product(s)")
        self.shortages = shortages


async def place_order(db: Database, user: str, quantities: dict[int, int]) -> Order:
    """Insert the order and its items and decrement stock, all or nothing.

    Product rows are locked (``FOR UPDATE``, in id order so that concurrent orders
    cannot deadlock) before stock is checked, so two orders cannot both take the
    last unit.
    """
    if not quantities:
        raise EmptyCart(user)
    async with db.connection() as conn, conn.transaction():
        rows = await db.fetch(
            conn,
            "lock_products",
            "SELECT id, price_cents, stock FROM products WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (sorted(quantities),),
        )
        found = {row["id"]: row for row in rows}
        missing = sorted(set(quantities) - set(found))
        if missing:
            raise UnknownProducts(missing)
        shortages = [
            Shortage(product_id=product_id, requested=quantity, available=found[product_id]["stock"])
            for product_id, quantity in sorted(quantities.items())
            if found[product_id]["stock"] < quantity
        ]
        if shortages:
            raise InsufficientStock(shortages)
        lines = [
            OrderLine(product_id=product_id, quantity=quantity, price_cents=found[product_id]["price_cents"])
            for product_id, quantity in sorted(quantities.items())
        ]
        total = sum(line.quantity * line.price_cents for line in lines)
        inserted = await db.fetch(
            conn,
            "insert_order",
            "INSERT INTO orders (user_name, total_cents) VALUES (%s, %s) RETURNING id, created_at",
            (user, total),
        )
        order_id = inserted[0]["id"]
        for line in lines:
            await db.execute(
                conn,
                "insert_order_item",
                "INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (%s, %s, %s, %s)",
                (order_id, line.product_id, line.quantity, line.price_cents),
            )
            await db.execute(
                conn,
                "take_stock",
                "UPDATE products SET stock = stock - %s WHERE id = %s",
                (line.quantity, line.product_id),
            )
    return Order(id=order_id, user=user, items=lines, total_cents=total, created_at=inserted[0]["created_at"])
