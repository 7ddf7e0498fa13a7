"""Each injected fault shows its symptom in the real target and in the app, and its reset clears it."""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import redis
from shop_support import REDIS_MAXMEMORY_MB, AppLauncher, Shop

Pg = psycopg.Connection[tuple[Any, ...]]
MIB = 1024 * 1024

pytestmark = pytest.mark.usefixtures("clean")


def sessions(pg: Pg, application_name: str) -> int:
    row = pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def client_backends(pg: Pg) -> int:
    row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
    assert row is not None
    return int(row[0])


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``condition`` (backends exit a moment after their client hangs up)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def used_memory(cache: redis.Redis) -> int:
    return int(cache.info("memory")["used_memory"])


def median_latency_ms(shop: Shop, path: str, samples: int) -> float:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        shop.http.get(path).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def logged(shop: Shop, event: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        line
        for line in shop.logs()
        if line["event"] == event and all(line.get(key) == value for key, value in fields.items())
    ]


# ---------------------------------------------------------------------- PostgreSQL


def test_held_connections_appear_in_pg_stat_activity_until_released(shop: Shop, pg: Pg) -> None:
    before = client_backends(pg)

    result = shop.http.post("/load/database", params={"connections": 5}).json()

    assert (result["opened"], result["held"], result["limit_reached"]) == (5, 5, False)
    assert client_backends(pg) == before + 5
    assert sessions(pg, "shop-load-connections") == 5
    assert shop.http.get("/load").json()["database_connections"]["held"] == 5

    assert shop.http.delete("/load/database").json()["released"] == 5
    eventually(lambda: client_backends(pg) == before)


def test_exhausted_connection_slots_are_503_too_many_connections(shop: Shop, pg: Pg) -> None:
    errors_before = shop.metric("shop_errors_total", cause="database_too_many_connections")
    spare = psycopg.connect(host="127.0.0.1", port=pg.info.port, user="postgres", dbname="shop")
    filled = shop.http.post("/load/database", params={"connections": 1000}).json()
    assert filled["limit_reached"]
    assert "too many clients" in filled["error"]
    assert filled["pending"] == 1000 - filled["opened"]
    spare.close()  # the fault's retrying thread takes the freed slot
    eventually(lambda: shop.http.get("/load").json()["database_connections"]["held"] == filled["held"] + 1)

    # The app opens a connection per request; whatever slot it still had in use when
    # the fault struck is taken by the fault's retrying thread within moments.
    deadline = time.monotonic() + 10
    while (response := shop.http.get("/products")).status_code == 200:
        assert time.monotonic() < deadline, "the pool never ran dry"
        time.sleep(0.05)
    health = shop.http.get("/health")

    assert response.status_code == 503
    assert response.json()["cause"] == "database_too_many_connections"
    assert "too many clients" in response.json()["detail"]
    assert health.status_code == 503
    assert health.json()["errors"]["database"]["cause"] == "database_too_many_connections"
    assert shop.metric("shop_errors_total", cause="database_too_many_connections") == errors_before + 1
    assert logged(shop, "dependency_error", cause="database_too_many_connections", route="/products")

    shop.http.delete("/load/database").raise_for_status()
    eventually(lambda: shop.http.get("/products").status_code == 200, timeout=10)


def test_blocking_queues_sessions_behind_a_lock_without_blocking_the_app(shop: Shop, pg: Pg) -> None:
    started = time.monotonic()
    result = shop.http.post("/load/database/blocking", params={"count": 3}).json()
    assert time.monotonic() - started < 5

    rows = pg.execute(
        "SELECT pid, wait_event_type, pg_blocking_pids(pid) FROM pg_stat_activity"
        " WHERE application_name = 'shop-load-blocked'"
    ).fetchall()
    assert len(rows) == 3
    assert all(wait == "Lock" and blockers == [result["holder_pid"]] for _, wait, blockers in rows)
    assert sorted(pid for pid, _, _ in rows) == sorted(result["blocked_pids"])
    holder = pg.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (result["holder_pid"],)).fetchone()
    assert holder == ("idle in transaction",)
    # The event loop is free: endpoints that do not read products answer at once.
    started = time.monotonic()
    assert shop.http.get("/health").status_code == 200
    assert shop.http.get("/load").json()["database_blocking"]["waiters_still_blocked"] == 3
    assert time.monotonic() - started < 1
    assert shop.http.post("/load/database/blocking").status_code == 409  # one at a time

    started = time.monotonic()
    released = shop.http.delete("/load/database/blocking").json()
    assert time.monotonic() - started < 2
    assert released["waiters_still_running"] == 0
    eventually(lambda: sessions(pg, "shop-load-blocked") + sessions(pg, "shop-load-blocker") == 0)
    assert shop.http.get("/products").status_code == 200


def test_blocked_product_reads_fail_as_slow_queries_and_pool_timeouts(shop: Shop) -> None:
    slow_before = shop.metric("shop_errors_total", cause="slow_query")
    timeouts_before = shop.metric("shop_errors_total", cause="database_pool_timeout")
    shop.http.post("/load/database/blocking", params={"count": 1}).raise_for_status()

    # The pooled connections (at most SHOP_DB_POOL_MAX = 4) wait on the lock until
    # statement_timeout (1.5 s); the other requests give up waiting for one after 0.5 s.
    with ThreadPoolExecutor(max_workers=8) as executor:
        responses = list(executor.map(lambda _: shop.http.get("/products"), range(8)))

    assert {response.status_code for response in responses} == {503}
    causes = [response.json()["cause"] for response in responses]
    slow, timeouts = causes.count("slow_query"), causes.count("database_pool_timeout")
    assert slow >= 1 and timeouts >= 4 and slow + timeouts == 8, causes
    assert shop.metric("shop_errors_total", cause="slow_query") == slow_before + slow
    assert shop.metric("shop_errors_total", cause="database_pool_timeout") == timeouts_before + timeouts
    timed_out = next(response.json() for response in responses if response.json()["cause"] == "database_pool_timeout")
    assert "connections busy" in timed_out["detail"]  # the pool's state, for whoever diagnoses it
    cancelled = logged(shop, "dependency_error", cause="slow_query", route="/products")
    assert "statement timeout" in cancelled[-1]["error"]


def test_a_query_that_waits_then_completes_is_logged_as_slow(shop: Shop) -> None:
    shop.http.post("/load/database/blocking", params={"count": 1}).raise_for_status()
    with ThreadPoolExecutor(max_workers=1) as executor:
        waiting = executor.submit(shop.http.get, "/products")
        time.sleep(0.6)  # past SHOP_SLOW_QUERY_MS (200), short of the statement timeout
        shop.http.delete("/load/database/blocking").raise_for_status()
        assert waiting.result().status_code == 200

    slow = logged(shop, "slow_query", query="list_products")[-1]
    assert slow["level"] == "warning"
    assert slow["cause"] == "slow_query"
    assert slow["duration_ms"] >= 500


# ---------------------------------------------------------------------- Redis


def test_redis_ballast_raises_used_memory_until_deleted(shop: Shop, cache: redis.Redis) -> None:
    before = used_memory(cache)

    result = shop.http.post("/load/redis", params={"size_mb": 8}).json()

    assert result["written_mb"] == pytest.approx(8, abs=0.1)
    assert not result["stopped_by_oom"]
    grown = (used_memory(cache) - before) / MIB
    assert 7 <= grown <= 11, grown
    assert len(list(cache.scan_iter(match="shop:ballast:*"))) == 8

    assert shop.http.delete("/load/redis").json()["deleted_keys"] == 8
    assert not list(cache.scan_iter(match="shop:ballast:*"))
    assert (used_memory(cache) - before) / MIB < 1.5


def test_redis_out_of_memory_fails_cart_writes_with_redis_oom(shop: Shop, cache: redis.Redis) -> None:
    oom_before = shop.metric("shop_errors_total", cause="redis_oom")

    result = shop.http.post("/load/redis", params={"size_mb": 4 * REDIS_MAXMEMORY_MB}).json()

    assert result["stopped_by_oom"]
    assert result["error"].startswith("OOM command not allowed")
    assert shop.http.get("/load").json()["redis_ballast"]["keeping_full"]
    assert used_memory(cache) > REDIS_MAXMEMORY_MB * MIB * 0.95
    # Redis is full to the last bytes (and kept so); a freed client buffer may still
    # admit a few small writes, after which every cart write is refused.
    for attempt in range(300):
        response = shop.http.post(f"/cart/oom-{attempt}/items", json={"product_id": 1, "quantity": 1})
        if response.status_code != 200:
            break
    assert response.status_code == 503
    assert response.json()["cause"] == "redis_oom"
    assert shop.metric("shop_errors_total", cause="redis_oom") >= oom_before + 1
    line = logged(shop, "dependency_error", cause="redis_oom", route="/cart/{user}/items")[-1]
    assert line["level"] == "error"
    assert line["error"].startswith("OOM command not allowed")

    shop.http.delete("/load/redis").raise_for_status()
    assert shop.http.post("/cart/after-oom/items", json={"product_id": 1, "quantity": 1}).status_code == 200


# ---------------------------------------------------------------------- CPU


def test_cpu_load_raises_request_latency_until_stopped(shop: Shop) -> None:
    baseline = median_latency_ms(shop, "/products", 15)

    shop.http.post("/load/cpu", params={"duration": 60, "threads": 2}).raise_for_status()
    loaded = median_latency_ms(shop, "/products", 7)
    status = shop.http.get("/load").json()["cpu"]
    stopped = shop.http.delete("/load/cpu").json()
    after = median_latency_ms(shop, "/products", 15)

    # Typically ~2 ms -> ~400 ms on an idle machine; far less when other processes
    # already keep the cores busy, hence the generous margin.
    assert loaded > 2 * baseline + 10, (baseline, loaded)
    assert status["threads"] == 2 and status["remaining_s"] > 0
    assert stopped["stopped"]
    assert shop.http.get("/load").json()["cpu"] is None
    assert after < loaded / 2, (after, loaded)


def test_cpu_load_ends_by_itself(shop: Shop) -> None:
    shop.http.post("/load/cpu", params={"duration": 0.3, "threads": 1}).raise_for_status()
    eventually(lambda: shop.http.get("/load").json()["cpu"] is None, timeout=3)


# ---------------------------------------------------------------------- all at once


def test_reset_releases_everything(shop: Shop, pg: Pg, cache: redis.Redis) -> None:
    backends = client_backends(pg)
    shop.http.post("/load/database", params={"connections": 2}).raise_for_status()
    shop.http.post("/load/database/blocking", params={"count": 2}).raise_for_status()
    shop.http.post("/load/redis", params={"size_mb": 2}).raise_for_status()
    shop.http.post("/load/cpu", params={"duration": 60, "threads": 1}).raise_for_status()
    status = shop.http.get("/load").json()
    assert status["database_connections"]["held"] == 2
    assert len(status["database_blocking"]["waiter_pids"]) == 2
    assert status["redis_ballast"]["keys_held"] == 2
    assert status["cpu"]["threads"] == 1

    shop.http.post("/load/reset").raise_for_status()

    assert shop.http.get("/load").json() == {
        "database_connections": {"held": 0, "pending": 0, "pids": []},
        "database_blocking": None,
        "redis_ballast": {"keys_held": 0, "keeping_full": False},
        "cpu": None,
    }
    eventually(lambda: client_backends(pg) == backends)
    assert not list(cache.scan_iter(match="shop:ballast:*"))


def test_shutdown_releases_what_was_injected(launcher: AppLauncher, pg: Pg, cache: redis.Redis) -> None:
    other = launcher.start("short-lived")
    other.http.post("/load/database", params={"connections": 3}).raise_for_status()
    other.http.post("/load/database/blocking", params={"count": 2}).raise_for_status()
    other.http.post("/load/redis", params={"size_mb": 1}).raise_for_status()
    assert sessions(pg, "shop-load-connections") == 3

    # Uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert launcher.stop(other) in (0, -signal.SIGTERM)

    injected = ("shop-load-connections", "shop-load-blocker", "shop-load-blocked")
    eventually(lambda: all(sessions(pg, name) == 0 for name in injected))
    assert not list(cache.scan_iter(match="shop:ballast:*"))
    shutdown = [line for line in other.logs() if line["event"] == "shutdown"]
    assert shutdown[-1]["released"]["database_connections"]["released"] == 3


def test_raising_maxmemory_ends_the_redis_fault(shop: Shop, cache: redis.Redis) -> None:
    shop.http.post("/load/redis", params={"size_mb": 4 * REDIS_MAXMEMORY_MB}).raise_for_status()
    full = used_memory(cache)
    try:
        cache.config_set("maxmemory", f"{2 * REDIS_MAXMEMORY_MB}mb")  # the operator's remedy
        time.sleep(0.6)  # two rounds of the ballast's watcher: it must leave the new room alone

        assert used_memory(cache) < full + MIB / 2
        assert shop.http.post("/cart/remedied/items", json={"product_id": 1, "quantity": 1}).status_code == 200
    finally:
        cache.config_set("maxmemory", f"{REDIS_MAXMEMORY_MB}mb")
