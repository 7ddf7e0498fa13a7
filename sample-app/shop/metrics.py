"""The shop's Prometheus metrics, in a registry of their own.

A private registry (not prometheus_client's global one) keeps two apps in one
process, as tests may build, from colliding, and keeps ``/metrics`` to what the
shop itself measures. Every error cause is pre-created at zero so that a rate
over ``shop_errors_total{cause=...}`` exists before the first failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from shop.errors import Cause

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# psycopg_pool.get_stats() key -> (gauge name, help)
_POOL_GAUGES = {
    "pool_size": ("shop_db_pool_connections", "PostgreSQL connections open, one per request using the database."),
    "pool_max": ("shop_db_pool_max_connections", "Most connections open at once (SHOP_DB_POOL_MAX)."),
    "requests_waiting": ("shop_db_pool_waiting_requests", "Requests queued because the pool is at its maximum."),
}


class _PoolCollector(Collector):
    """Reads the pool's own statistics at scrape time (nothing to keep in sync)."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for key, (name, documentation) in _POOL_GAUGES.items():
            yield GaugeMetricFamily(name, documentation, value=stats.get(key, 0))


class Metrics:
    """Request, latency and error metrics, plus the database pool's state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "shop_requests",
            "HTTP requests answered, by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "shop_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "shop_errors",
            "Failures by cause: dependencies (database_*, redis_*), slow queries, and bugs (internal).",
            ["cause"],
            registry=self.registry,
        )
        for cause in Cause:
            self.errors.labels(cause=cause.value)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.duration.labels(method=method, route=route).observe(seconds)

    def count_error(self, cause: Cause) -> None:
        self.errors.labels(cause=cause.value).inc()

    def watch_pool(self, stats: Callable[[], Mapping[str, int]]) -> None:
        """Expose the connection pool's gauges, read from ``stats`` at each scrape."""
        self.registry.register(_PoolCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
