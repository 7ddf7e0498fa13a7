"""PostgreSQL incidents end to end: the sample app leaks sessions and holds a lock; the runbook fixes it.

The full local stack runs (PostgreSQL, Redis, the sample app). The app connects as an
ordinary role (`shop`), as applications should: OpsGraph never terminates a
superuser's sessions, so a leak held by a superuser would be left to a human (the
runbook then raises max_connections instead; see the last tests). OpsGraph connects as
the superuser (`connection.user: postgres`); the local environment creates `local.app_user`
for the app.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Stack, running_stack, shop_resources, wait_for

from opsgraph.agents.records import Incident
from opsgraph.agents.runbooks import RUNBOOKS
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.faults import scenario_named
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Health, Snapshot
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(90)

MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("shop"), shop_resources(MAX_CONNECTIONS, edge=False)) as running:
        yield running


@pytest.fixture
def app(stack: Stack) -> Iterator[httpx.Client]:
    """A client for the sample app; whatever a test injected is reset afterwards."""
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.inventory.get('shop').connection.port}", timeout=30) as client:
        yield client
        client.post("/load/reset").raise_for_status()
        wait_for(lambda: probe(stack.inventory.get("db")).health is Health.HEALTHY, "the database to calm down", 10)


def inject(stack: Stack, scenario: str) -> dict[str, Any]:
    db = stack.inventory.get("db")
    return scenario_named(scenario).inject(db, ToolContext(inventory=stack.inventory, state_dir=stack.state_dir))


def test_connection_overload_is_detected_diagnosed_fixed_and_verified(stack: Stack, app: httpx.Client) -> None:
    injected = inject(stack, "postgres-connection-overload")
    started = time.time()
    assert injected["held"] > 0 and len(injected["blocked_pids"]) == 5
    seen = probe(stack.inventory.get("db"))
    assert seen.symptom == "postgres_connection_pressure" and seen.health is Health.FAILED
    assert float(seen.metrics["connections_used_pct"] or 0) >= 85 and seen.metrics["blocked_queries"] == 5

    context = stack.context(approval="none")
    with incident_graph(stack.state_dir) as graph:
        result = start_incident(graph, context, "db", "inc-pg-overload", started)
    report = result.report
    assert report is not None, result.values.get("outcome_detail")
    assert report["resolved"] is True, report.get("outcome_detail")
    assert "shop-load-connections" in report["root_cause"] and "leak" in report["root_cause"]
    leak, blockers = report["actions"]
    assert leak["tool"] == blockers["tool"] == "postgres_kill_long_queries"
    assert leak["args"]["application_name"] == "shop-load-connections" and leak["args"]["state"] == "idle"
    assert blockers["args"]["blockers_only"] is True and blockers["args"]["state"] == "idle in transaction"
    assert leak["status"] == blockers["status"] == "ok"
    assert report["metrics_before"]["connections_used_pct"] >= 85
    assert report["metrics_after"]["connections_used_pct"] < 80 and report["metrics_after"]["blocked_queries"] == 0

    leaked, blocking = (action["output"] for action in result.values["actions"])
    assert leaked["terminated"] == injected["held"]
    assert [s["pid"] for s in blocking["sessions"]] == [injected["blocker_pid"]]
    assert app.get("/health").json()["status"] == "ok"
    assert app.get("/products").status_code == 200  # the lock is gone


def test_blocked_queries_alone_terminate_only_the_blocker(stack: Stack, app: httpx.Client) -> None:
    injected = inject(stack, "postgres-blocking-queries")
    assert probe(stack.inventory.get("db")).symptom == "postgres_blocked_queries"
    context = stack.context(approval="none")
    with incident_graph(stack.state_dir) as graph:
        result = start_incident(graph, context, "db", "inc-pg-blocked")
    report = result.report
    assert report is not None and report["resolved"] is True, result.values.get("outcome_detail")
    [action] = report["actions"]
    assert action["args"] == {
        "resource": "db",
        "state": "idle in transaction",
        "min_duration_s": action["args"]["min_duration_s"],
        "application_name": "shop-load-blocker",
        "blockers_only": True,
        "max_sessions": 1,
    }
    assert "shop-load-blocker" in report["root_cause"]
    [terminated] = result.values["actions"][0]["output"]["sessions"]
    assert terminated["pid"] == injected["blocker_pid"]
    assert app.get("/products").status_code == 200


@pytest.mark.parametrize(("scenario", "kills"), [("postgres-connection-overload", 2), ("postgres-blocking-queries", 1)])
def test_cli_demo_prints_the_resolved_incident(stack: Stack, scenario: str, kills: int) -> None:
    command = [
        sys.executable, "-m", "opsgraph", "demo", scenario, "--approval", "none", "--json",
        "--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        reset = scenario_named(scenario).reset
        assert reset is not None
        reset(stack.inventory.get("db"), stack.context().tools)  # the scenario's own teardown
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    [record] = [r for r in records if r["resource"] == "db"]
    assert record["resolved"] is True
    assert [a["tool"] for a in record["actions"]] == ["postgres_kill_long_queries"] * kills
    assert all(a["status"] == "ok" for a in record["actions"])


# ---- the runbook's choices on facts a live stack cannot easily show (held by a superuser, real demand)


def _facts(groups: list[dict[str, Any]], connections: int, active: int = 2) -> dict[str, Any]:
    return {
        "connections": connections,
        "max_connections": 100,
        "connected_as": "postgres",
        "hidden_sessions": 0,
        "by_state": {"idle": connections - active - 5, "active": active},
        "by_application": groups,
        "blocked_queries": 0,
        "blockers": [],
        "locks": {"granted": 10, "waiting": 0, "by_mode": {}},
    }


def _group(name: str, idle: int, idle_superuser: int = 0) -> dict[str, Any]:
    return {
        "application_name": name, "sessions": idle, "states": {"idle": idle}, "users": ["postgres"],
        "superuser_sessions": idle_superuser, "idle": idle, "idle_superuser": idle_superuser,
        "idle_min_s": 4.2, "idle_max_s": 60.0,
    }  # fmt: skip


def _incident() -> Incident:
    return Incident(
        incident_id="inc-unit",
        resource="db",
        kind="postgres",
        symptom="postgres_connection_pressure",
        fingerprint="db:postgres_connection_pressure",
        severity=Health.DEGRADED,
        fault_started_at=0.0,
        detected_at=0.0,
    )


def _reader(facts: dict[str, Any]) -> Any:
    def read(tool: str, args: dict[str, Any]) -> ToolOutcome:
        assert tool == "postgres_info"
        return ToolOutcome(ok=True, output=facts, duration_s=0.0)

    return read


_DB = parse_inventory({"resources": [{"name": "db", "kind": "postgres", "connection": {"port": 5432}}]}).get("db")


def test_runbook_terminates_a_leak_it_may_touch() -> None:
    facts = _facts([_group("worker", idle=80)], connections=88)
    plan = RUNBOOKS["postgres_connection_pressure"].plan(_incident(), _DB, _reader(facts))
    [step] = plan.steps
    assert step.tool == "postgres_kill_long_queries"
    assert step.args == {
        "resource": "db", "state": "idle", "min_duration_s": 4, "application_name": "worker", "max_sessions": 80,
    }  # fmt: skip


def test_runbook_scales_when_the_leak_is_held_by_a_superuser() -> None:
    facts = _facts([_group("worker", idle=80, idle_superuser=80)], connections=88)
    snapshot = Snapshot(resource="db", kind="postgres", health=Health.DEGRADED, taken_at=0.0)
    diagnosis = RUNBOOKS["postgres_connection_pressure"].diagnose(_incident(), snapshot, _reader(facts))
    assert "'worker'" in diagnosis.root_cause
    plan = RUNBOOKS["postgres_connection_pressure"].plan(_incident(), _DB, _reader(facts))
    [step] = plan.steps
    assert step.tool == "postgres_scale_connections" and step.args["max_connections"] == 150
    assert "superuser" in plan.summary


def test_runbook_scales_for_real_demand() -> None:
    facts = _facts([_group("web", idle=3)], connections=90, active=80)
    diagnosis = RUNBOOKS["postgres_connection_pressure"].diagnose(
        _incident(), Snapshot(resource="db", kind="postgres", health=Health.DEGRADED, taken_at=0.0), _reader(facts)
    )
    assert diagnosis.hypotheses[0].cause.startswith("real demand")
    plan = RUNBOOKS["postgres_connection_pressure"].plan(_incident(), _DB, _reader(facts))
    assert [step.tool for step in plan.steps] == ["postgres_scale_connections"]
