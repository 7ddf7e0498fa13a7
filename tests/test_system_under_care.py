"""The whole local stack — PostgreSQL, Redis, the sample app behind nginx — seen through OpsGraph's probes.

Every fault-injection endpoint must produce the symptom it claims as OpsGraph's own
probes see it, and every reset must clear it; under steady traffic a fault must show
in the app's metrics and in its JSON log lines, naming the cause.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Stack, running_stack, shop_resources, stop, wait_for, watching

from opsgraph.tools.probes import probe
from opsgraph.tools.runner import run_tool
from opsgraph.tools.snapshot import Health, Snapshot
from opsgraph.tools.traffic import TrafficPlan, TrafficStats, generate_traffic

MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("shop"), shop_resources(MAX_CONNECTIONS)) as running:
        yield running


@pytest.fixture
def edge(stack: Stack) -> Iterator[httpx.Client]:
    """A client for the shop through nginx; every injection is reset afterwards."""
    url = f"http://127.0.0.1:{stack.inventory.get('edge').connection.port}"
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
        client.post("/load/reset").raise_for_status()


def seen(stack: Stack, name: str) -> Snapshot:
    return probe(stack.inventory.get(name))


def test_stack_is_healthy_and_the_app_answers_through_nginx(stack: Stack, edge: httpx.Client) -> None:
    assert all(status.running for status in stack.local.status())
    for name in ("cache", "db", "shop", "edge"):
        assert seen(stack, name).health is Health.HEALTHY, seen(stack, name).reasons
    assert edge.get("/health").json()["status"] == "ok"
    assert len(edge.get("/products").json()) > 0


def test_database_connection_load_is_seen_and_reset(stack: Stack, edge: httpx.Client) -> None:
    edge.post("/load/database", params={"connections": int(MAX_CONNECTIONS * 0.9)}).raise_for_status()
    loaded = seen(stack, "db")
    assert loaded.health is not Health.HEALTHY
    assert loaded.symptom == "postgres_connection_pressure"
    assert float(loaded.metrics["connections_used_pct"] or 0) >= 85
    edge.delete("/load/database").raise_for_status()
    wait_for(lambda: seen(stack, "db").health is Health.HEALTHY, "connections to be released")


def test_blocking_queries_are_seen_and_reset(stack: Stack, edge: httpx.Client) -> None:
    edge.post("/load/database/blocking", params={"count": 5}).raise_for_status()
    wait_for(lambda: int(seen(stack, "db").metrics["blocked_queries"] or 0) >= 5, "blocked queries")
    blocked = seen(stack, "db")
    assert blocked.symptom == "postgres_blocked_queries" and blocked.health is Health.FAILED
    edge.delete("/load/database/blocking").raise_for_status()
    wait_for(lambda: seen(stack, "db").metrics["blocked_queries"] == 0, "the locks to be released")


def test_redis_memory_load_is_seen_and_reset(stack: Stack, edge: httpx.Client) -> None:
    edge.post("/load/redis", params={"size_mb": 64}).raise_for_status()  # more than fits: stops at OOM
    full = seen(stack, "cache")
    assert full.symptom == "redis_memory_pressure" and full.health is Health.FAILED
    assert float(full.metrics["memory_used_pct"] or 0) >= 95
    edge.delete("/load/redis").raise_for_status()
    assert seen(stack, "cache").health is Health.HEALTHY


def test_cpu_load_shows_in_the_apps_latency(stack: Stack, edge: httpx.Client) -> None:
    calm = float(seen(stack, "shop").metrics["latency_p50_ms"] or 0)
    edge.post("/load/cpu", params={"duration": 30}).raise_for_status()
    time.sleep(0.5)
    busy = float(seen(stack, "shop").metrics["latency_p50_ms"] or 0)
    edge.delete("/load/cpu").raise_for_status()
    time.sleep(0.5)
    after = float(seen(stack, "shop").metrics["latency_p50_ms"] or 0)
    assert busy > 3 * calm + 5, (calm, busy)
    assert after < busy / 2, (busy, after)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} ([0-9.e+]+)$", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            total += float(match.group(2))
    return total


def error_lines(stack: Stack, cause: str) -> list[dict[str, Any]]:
    lines = []
    for line in (stack.state_dir / "local" / "shop" / "app.log").read_text().splitlines():
        if line.startswith("{") and f'"{cause}"' in line:
            record = json.loads(line)
            if record.get("cause") == cause and record.get("event") == "dependency_error":
                lines.append(record)
    return lines


def under_traffic(stack: Stack, seconds: float) -> tuple[threading.Thread, list[TrafficStats]]:
    url = f"http://127.0.0.1:{stack.inventory.get('edge').connection.port}"
    results: list[TrafficStats] = []
    plan = TrafficPlan(base_url=url, rate_per_s=40, duration_s=seconds, workers=4)
    thread = threading.Thread(target=lambda: results.append(generate_traffic(plan)))
    thread.start()
    return thread, results


@pytest.mark.parametrize(
    ("inject", "params", "cause"),
    [
        ("/load/redis", {"size_mb": 64}, "redis_oom"),
        ("/load/database", {"connections": MAX_CONNECTIONS}, "database_too_many_connections"),
    ],
)
def test_faults_under_traffic_raise_errors_in_metrics_and_logs(
    stack: Stack, edge: httpx.Client, inject: str, params: dict[str, int], cause: str
) -> None:
    before = metric(edge.get("/metrics").text, "shop_errors_total", cause=cause)
    logged_before = len(error_lines(stack, cause))
    thread, results = under_traffic(stack, seconds=4)
    time.sleep(1)
    edge.post(inject, params=params).raise_for_status()
    thread.join()
    text = edge.get("/metrics").text
    assert metric(text, "shop_errors_total", cause=cause) > before
    assert metric(text, "shop_requests_total", status="503") > 0
    assert results[0].statuses.get("503", 0) > 0
    new_lines = error_lines(stack, cause)[logged_before:]
    assert new_lines, f"no JSON error line with cause {cause}"
    assert new_lines[-1]["level"] == "error" and new_lines[-1]["error"]  # the underlying error text


def test_watch_fixes_a_fault_injected_through_the_app(stack: Stack, edge: httpx.Client) -> None:
    """The demo loop with nobody at the keyboard: the app fills Redis, the watcher fixes it once."""
    ledger = stack.context().ledger
    already = {row["incident_id"] for row in ledger.incidents()}
    assert edge.post("/cart/ann/items", json={"product_id": 1, "quantity": 1}).status_code == 200
    edge.post("/load/redis", params={"size_mb": 64}).raise_for_status()
    # Seen before the watcher starts: a running watcher can fix it before the next request (it once did).
    assert edge.post("/cart/ann/items", json={"product_id": 1, "quantity": 1}).status_code == 503
    with watching(stack, "none") as watcher:

        def new_incidents() -> list[dict[str, Any]]:
            return [row for row in ledger.incidents() if row["incident_id"] not in already]

        wait_for(lambda: [row for row in new_incidents() if row["status"] == "resolved"], "the fix")
        time.sleep(1.0)
        [incident] = new_incidents()
        assert (incident["resource"], incident["symptom"]) == ("cache", "redis_memory_pressure")
        assert edge.post("/cart/ann/items", json={"product_id": 1, "quantity": 1}).status_code == 200
        stop(watcher, stack)


def test_the_supervisor_restarts_the_app_when_it_dies(stack: Stack, edge: httpx.Client) -> None:
    def app_children() -> list[int]:
        outcome = run_tool("process_stats", {"resource": "shop"}, stack.context().tools, 5)
        assert outcome.ok and outcome.output is not None, outcome.error
        return [child["pid"] for child in outcome.output["children"]]

    [before] = app_children()
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: app_children() not in ([], [before]), "a new app process")
    wait_for(lambda: edge.get("/health").status_code == 200, "the app to answer again")
    assert "restarting" in (stack.state_dir / "local" / "shop" / "app.log").read_text()
