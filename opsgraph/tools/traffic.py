"""A steady, bounded traffic generator for the sample app, so faults show up in its metrics and logs.

Loopback only (it refuses any other host), and bounded in rate and duration: it is a
demo and test aid, not a load-testing tool.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

MAX_RATE_PER_S = 200.0
MAX_DURATION_S = 3600.0


class TrafficError(ValueError):
    """The traffic request is out of bounds or aimed somewhere it must not go."""


@dataclass(frozen=True, kw_only=True)
class TrafficPlan:
    base_url: str
    rate_per_s: float = 20.0
    duration_s: float = 30.0
    workers: int = 4
    users: int = 20

    def validate(self) -> None:
        if not 0 < self.rate_per_s <= MAX_RATE_PER_S:
            raise TrafficError(f"rate must be in (0, {MAX_RATE_PER_S:g}] requests/s, got {self.rate_per_s:g}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise TrafficError(f"duration must be in (0, {MAX_DURATION_S:g}] s, got {self.duration_s:g}")
        if not 1 <= self.workers <= 32:
            raise TrafficError(f"workers must be 1..32, got {self.workers}")
        host = urlsplit(self.base_url).hostname
        if host is None:
            raise TrafficError(f"{self.base_url!r} has no host")
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        if not all(ipaddress.ip_address(address).is_loopback for address in addresses):
            raise TrafficError(f"{host} is not a loopback address: traffic stays on this machine")


@dataclass
class TrafficStats:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: str, latency_ms: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies_ms.append(latency_ms)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith(("2", "4")))


def _one_request(client: httpx.Client, product_ids: list[int], user: str) -> httpx.Response:
    """A shopper's request: mostly browsing, some cart writes, a few orders."""
    roll = random.random()
    if roll < 0.6:
        return client.get(f"/products/{random.choice(product_ids)}")
    if roll < 0.8:
        return client.get("/products")
    if roll < 0.95:
        return client.post(f"/cart/{user}/items", json={"product_id": random.choice(product_ids), "quantity": 1})
    return client.post("/orders", json={"user": user})


def _product_ids(base_url: str) -> list[int]:
    """The shop's product ids: also the check that the target is up and is the sample app."""
    try:
        with httpx.Client(base_url=base_url, timeout=5.0) as client:
            catalogue = client.get("/products").raise_for_status().json()
        return [int(product["id"]) for product in catalogue] or [1]
    except httpx.TransportError as error:
        raise TrafficError(f"{base_url} does not answer ({type(error).__name__}: {error}); is it up?") from None
    except httpx.HTTPStatusError as error:
        status = error.response.status_code
        raise TrafficError(f"{base_url}/products answered {status}: is the sample app behind it up?") from None
    except (ValueError, KeyError, TypeError):
        raise TrafficError(f"{base_url}/products is not the sample app's product list") from None


def generate_traffic(plan: TrafficPlan, stop: threading.Event | None = None) -> TrafficStats:
    """Send requests at about `rate_per_s` for `duration_s` (or until `stop`), and count outcomes."""
    plan.validate()
    stop = stop or threading.Event()
    stats = TrafficStats()
    product_ids = _product_ids(plan.base_url)
    deadline = time.monotonic() + plan.duration_s
    interval = plan.workers / plan.rate_per_s

    def worker(number: int) -> None:
        with httpx.Client(base_url=plan.base_url, timeout=5.0) as client:
            next_at = time.monotonic() + number * interval / plan.workers
            while not stop.is_set() and time.monotonic() < deadline:
                stop.wait(max(0.0, next_at - time.monotonic()))
                next_at += interval
                user = f"shopper-{random.randrange(plan.users)}"
                started = time.perf_counter()
                try:
                    status = str(_one_request(client, product_ids, user).status_code)
                except httpx.TransportError as error:
                    status = type(error).__name__
                stats.record(status, 1000 * (time.perf_counter() - started))

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(plan.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats
