"""The shop's configuration, read once from ``SHOP_*`` environment variables.

A plain dataclass rather than pydantic-settings: the app has eight settings and
should not pull a configuration framework into the image for them. Each field
names its variable and says what it is for; ``from_env`` fails on the first
missing or malformed one with a message naming it, so a bad deployment stops at
startup instead of failing on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A required variable is missing or a value cannot be used; the message names the variable."""


def _env(name: str, purpose: str, *, required: bool = False) -> Any:
    """Field metadata: the variable a field is read from, and why it exists."""
    return {"env": name, "purpose": purpose, "required": required}


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str = field(
        metadata=_env("SHOP_DATABASE_URL", "libpq URL or conninfo of the shop database (must exist)", required=True)
    )
    redis_url: str = field(metadata=_env("SHOP_REDIS_URL", "Redis URL for the product cache and carts", required=True))
    db_pool_max: int = field(
        default=10, metadata=_env("SHOP_DB_POOL_MAX", "most PostgreSQL connections open at once (one per request)")
    )
    db_pool_timeout_s: float = field(
        default=2.0, metadata=_env("SHOP_DB_POOL_TIMEOUT_S", "how long a request queues when the pool is full")
    )
    slow_query_ms: float = field(
        default=500.0, metadata=_env("SHOP_SLOW_QUERY_MS", "queries slower than this are logged as slow_query")
    )
    statement_timeout_ms: int = field(
        default=5000,
        metadata=_env("SHOP_STATEMENT_TIMEOUT_MS", "PostgreSQL cancels app queries after this (0: never)"),
    )
    cache_ttl_s: int = field(default=60, metadata=_env("SHOP_CACHE_TTL_S", "lifetime of cached products"))
    log_file: Path | None = field(
        default=None, metadata=_env("SHOP_LOG_FILE", "also append the JSON log lines to this file")
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment)."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = source.get(name, "").strip()
            if not raw:
                if spec.metadata["required"]:
                    raise SettingsError(f"{name} is required: {spec.metadata['purpose']}")
                continue
            values[spec.name] = _parse(name, raw, _PARSERS[spec.name])
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        if self.db_pool_max < 1:
            raise SettingsError(f"SHOP_DB_POOL_MAX must be at least 1, got {self.db_pool_max}")
        if self.db_pool_timeout_s <= 0:
            raise SettingsError(f"SHOP_DB_POOL_TIMEOUT_S must be positive, got {self.db_pool_timeout_s}")
        if self.statement_timeout_ms < 0:
            raise SettingsError(f"SHOP_STATEMENT_TIMEOUT_MS must not be negative, got {self.statement_timeout_ms}")
        if self.cache_ttl_s < 1:
            raise SettingsError(f"SHOP_CACHE_TTL_S must be at least 1, got {self.cache_ttl_s}")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": str,
    "redis_url": str,
    "db_pool_max": int,
    "db_pool_timeout_s": float,
    "slow_query_ms": float,
    "statement_timeout_ms": int,
    "cache_ttl_s": int,
    "log_file": Path,
}


def _parse(name: str, raw: str, parser: Callable[[str], Any]) -> Any:
    try:
        return parser(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {parser.__name__}") from None
