"""What route handlers need, built once per app start and reached through a dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from redis.asyncio import Redis

from shop.carts import Carts
from shop.catalog import Catalog
from shop.db import Database
from shop.errors import Reporter
from shop.faults import Faults
from shop.metrics import Metrics
from shop.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    metrics: Metrics
    reporter: Reporter
    db: Database
    redis: Redis
    catalog: Catalog
    carts: Carts
    faults: Faults


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]
