"""The shop's business API, health, metrics and logs, against real PostgreSQL and Redis."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from typing import Any

import psycopg
import redis
from shop_support import PASSWORD, AppLauncher, Shop, app_environment
from support import Stack, wait_for

_users = itertools.count()


def new_user() -> str:
    return f"user-{time.monotonic_ns()}-{next(_users)}"


def stock_in_db(pg: psycopg.Connection[tuple[Any, ...]], product_id: int) -> int:
    row = pg.execute("SELECT stock FROM products WHERE id = %s", (product_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_products_are_seeded_and_single_products_are_cached(shop: Shop, cache: redis.Redis) -> None:
    products = shop.http.get("/products").json()
    assert len(products) >= 30
    assert {"id", "name", "price_cents", "stock"} <= set(products[0])

    cache.delete("shop:product:2")
    first = shop.http.get("/products/2")
    assert first.status_code == 200
    assert first.json() == products[1]
    assert 0 < cache.ttl("shop:product:2") <= 60  # stored with a TTL
    assert shop.http.get("/products/2").json() == first.json()

    assert shop.http.get("/products/999999").status_code == 404


def test_cart_then_order_takes_stock_and_empties_the_cart(shop: Shop, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
    user = new_user()
    before = {pid: stock_in_db(pg, pid) for pid in (3, 4)}
    shop.http.get("/products/3")  # warm the cache: the order must invalidate it

    assert shop.http.post(f"/cart/{user}/items", json={"product_id": 3, "quantity": 2}).status_code == 200
    assert shop.http.post(f"/cart/{user}/items", json={"product_id": 3, "quantity": 1}).status_code == 200
    cart = shop.http.post(f"/cart/{user}/items", json={"product_id": 4, "quantity": 1}).json()
    assert [(line["product"]["id"], line["quantity"]) for line in cart["items"]] == [(3, 3), (4, 1)]
    assert cart["total_cents"] == sum(line["subtotal_cents"] for line in cart["items"])

    response = shop.http.post("/orders", json={"user": user})

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["user"] == user
    assert [(item["product_id"], item["quantity"]) for item in order["items"]] == [(3, 3), (4, 1)]
    assert stock_in_db(pg, 3) == before[3] - 3
    assert stock_in_db(pg, 4) == before[4] - 1
    assert shop.http.get("/products/3").json()["stock"] == before[3] - 3  # not a stale cached copy
    assert shop.http.get(f"/cart/{user}").json()["items"] == []
    rows = pg.execute("SELECT product_id, quantity FROM order_items WHERE order_id = %s ORDER BY 1", (order["id"],))
    assert rows.fetchall() == [(3, 3), (4, 1)]


def test_order_beyond_stock_is_409_and_takes_nothing(shop: Shop, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
    user = new_user()
    stock = stock_in_db(pg, 5)
    shop.http.post(f"/cart/{user}/items", json={"product_id": 5, "quantity": stock + 1}).raise_for_status()

    response = shop.http.post("/orders", json={"user": user})

    assert response.status_code == 409
    assert response.json()["detail"] == {
        "error": "insufficient_stock",
        "shortages": [{"product_id": 5, "requested": stock + 1, "available": stock}],
    }
    assert stock_in_db(pg, 5) == stock
    assert len(shop.http.get(f"/cart/{user}").json()["items"]) == 1  # the cart is kept


def test_bad_requests_are_rejected(shop: Shop) -> None:
    assert shop.http.post("/orders", json={"user": new_user()}).status_code == 400  # empty cart
    assert shop.http.post("/cart/bob/items", json={"product_id": 1, "quantity": 0}).status_code == 422
    assert shop.http.post("/cart/bob/items", json={"product_id": 999999, "quantity": 1}).status_code == 404
    assert shop.http.get("/cart/not a name").status_code == 422


def test_health_is_ok(shop: Shop) -> None:
    response = shop.http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_metrics_count_requests_by_route_template(shop: Shop) -> None:
    labels = {"method": "GET", "route": "/products/{id}"}
    requests_before = shop.metric("shop_requests_total", **labels, status="200")
    not_found_before = shop.metric("shop_requests_total", **labels, status="404")
    latency_before = shop.metric("shop_request_duration_seconds_count", **labels)

    for product_id in (1, 2, 3):
        shop.http.get(f"/products/{product_id}").raise_for_status()
    shop.http.get("/products/999999")

    assert shop.metric("shop_requests_total", **labels, status="200") == requests_before + 3
    assert shop.metric("shop_requests_total", **labels, status="404") == not_found_before + 1
    assert shop.metric("shop_request_duration_seconds_count", **labels) == latency_before + 4
    text = shop.http.get("/metrics").text
    assert 'route="/products/1"' not in text
    for cause in ("database_pool_timeout", "database_too_many_connections", "redis_oom", "slow_query", "internal"):
        assert f'shop_errors_total{{cause="{cause}"}}' in text
    assert "shop_db_pool_connections" in text


def test_logs_are_json_lines_with_request_fields(shop: Shop) -> None:
    shop.http.get("/products/7").raise_for_status()

    def logged() -> list[dict[str, Any]] | None:
        """The log once the request's line is in it: the app writes it after sending the response."""
        lines = shop.logs()
        seen = any(line["event"] == "request" and line.get("path") == "/products/7" for line in lines)
        return lines if seen else None

    logs = wait_for(logged, "the request's log line", 10)
    assert all({"ts", "level", "event"} <= set(line) for line in logs)
    request = [line for line in logs if line["event"] == "request" and line["path"] == "/products/7"][-1]
    assert request["method"] == "GET"
    assert request["route"] == "/products/{id}"
    assert request["status"] == 200
    assert isinstance(request["duration_ms"], float)
    # stdout carries the same JSON stream (plus uvicorn's lines, also as JSON).
    assert all(line.startswith("{") for line in shop.output_file.read_text().splitlines() if line)


def test_passwords_never_reach_the_logs(shop: Shop) -> None:
    startup = next(line for line in shop.logs() if line["event"] == "startup")
    assert startup["database"].startswith("postgresql://postgres:***@127.0.0.1:")
    assert PASSWORD not in shop.log_file.read_text()
    assert PASSWORD not in shop.output_file.read_text()


def test_redis_down_is_503_on_health_and_carts_while_products_still_serve(
    shop: Shop, cache: redis.Redis, stack: Stack, clean: None
) -> None:
    unavailable_before = shop.metric("shop_errors_total", cause="redis_unavailable")
    cache.shutdown(nosave=True)

    health = shop.http.get("/health")
    cart = shop.http.post("/cart/carol/items", json={"product_id": 1, "quantity": 1})
    product = shop.http.get("/products/11")

    assert health.status_code == 503
    body = health.json()
    assert (body["status"], body["database"], body["redis"]) == ("error", "ok", "error")
    assert body["errors"]["redis"]["cause"] == "redis_unavailable"
    assert body["errors"]["redis"]["error"]  # redis-py's words: connection closed, or refused
    assert cart.status_code == 503
    assert cart.json()["cause"] == "redis_unavailable"
    assert product.status_code == 200  # the cache is optional: read from PostgreSQL instead
    assert shop.metric("shop_errors_total", cause="redis_unavailable") >= unavailable_before + 2

    stack.local.up()
    assert shop.http.get("/health").status_code == 200


def test_missing_required_setting_stops_startup_naming_it(launcher: AppLauncher, stack: Stack) -> None:
    environment = app_environment(stack, launcher.folder / "unused.jsonl")
    del environment["SHOP_REDIS_URL"]
    command = [sys.executable, "-m", "uvicorn", "shop.app:create_app", "--factory", "--port", "1"]

    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode != 0
    assert "SHOP_REDIS_URL is required" in result.stdout + result.stderr
