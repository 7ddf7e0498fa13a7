"""The business API: products, carts and orders."""

from __future__ import annotations

from typing import Annotated

import redis.exceptions
from fastapi import APIRouter, HTTPException, Path, status

from shop.errors import classify
from shop.models import Cart, CartItemIn, CartLine, Order, OrderIn, Product, UserName
from shop.orders import EmptyCart, InsufficientStock, UnknownProducts, place_order
from shop.services import Services, ServicesDep

router = APIRouter(tags=["shop"])

UserPath = Annotated[UserName, Path(description="the shopper's name: letters, digits, '_.@-', at most 64")]


@router.get("/products")
async def list_products(services: ServicesDep) -> list[Product]:
    return await services.catalog.all()


@router.get("/products/{id}")
async def get_product(id: int, services: ServicesDep) -> Product:
    product = await services.catalog.get(id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {id}")
    return product


@router.post("/cart/{user}/items")
async def add_to_cart(user: UserPath, item: CartItemIn, services: ServicesDep) -> Cart:
    if await services.catalog.get(item.product_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no product {item.product_id}")
    await services.carts.add(user, item.product_id, item.quantity)
    return await _cart(services, user)


@router.get("/cart/{user}")
async def get_cart(user: UserPath, services: ServicesDep) -> Cart:
    return await _cart(services, user)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
async def create_order(body: OrderIn, services: ServicesDep) -> Order:
    quantities = await services.carts.items(body.user)
    try:
        order = await place_order(services.db, body.user, quantities)
    except EmptyCart:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the cart of {body.user} is empty") from None
    except UnknownProducts as error:
        raise HTTPException(
            status.HTTP_409_CONFLICT, {"error": "unknown_products", "product_ids": error.product_ids}
        ) from None
    except InsufficientStock as error:
        shortages = [shortage.model_dump() for shortage in error.shortages]
        raise HTTPException(status.HTTP_409_CONFLICT, {"error": "insufficient_stock", "shortages": shortages}) from None
    # After the commit: a Redis failure here leaves a stale cart or cache entry
    # (reported), but the order stands, so the user still gets their 201.
    await services.catalog.forget(quantities)
    try:
        await services.carts.clear(body.user)
    except redis.exceptions.RedisError as error:
        services.reporter.failure(classify(error), operation="cart_clear_after_order", degraded=True)
    return order


async def _cart(services: Services, user: str) -> Cart:
    quantities = await services.carts.items(user)
    products = await services.catalog.many(quantities)
    lines = [
        CartLine(
            product=products[product_id], quantity=quantity, subtotal_cents=quantity * products[product_id].price_cents
        )
        for product_id, quantity in sorted(quantities.items())
        if product_id in products
    ]
    return Cart(user=user, items=lines, total_cents=sum(line.subtotal_cents for line in lines))
