"""The shapes the API accepts and returns (and the product cache stores)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    price_cents: int
    stock: int


class CartItemIn(BaseModel):
    product_id: Annotated[int, Field(gt=0)]
    quantity: Annotated[int, Field(gt=0, le=1000)]


class CartLine(BaseModel):
    product: Product
    quantity: int
    subtotal_cents: int


class Cart(BaseModel):
    user: str
    items: list[CartLine]
    total_cents: int


class OrderIn(BaseModel):
    user: UserName


class OrderLine(BaseModel):
    product_id: int
    quantity: int
    price_cents: int


class Order(BaseModel):
    id: int
    user: str
    items: list[OrderLine]
    total_cents: int
    created_at: datetime


class Shortage(BaseModel):
    """One product the order asked more of than is in stock."""

    product_id: int
    requested: int
    available: int
