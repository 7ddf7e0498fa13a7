"""`/metrics` figures against a real ledger: incidents run by the real graph on a real Redis.

ServeMetrics reads the ledger at each scrape, so every figure here comes from rows the graph
wrote (from this process or any other); the watcher's figures come from real probes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from outside_redis import OutsideRedis, outside_redis
from prom_support import Exposition
from support import ScriptedReasoner, Stack, fast_context, redis_resource, running_stack

from opsgraph.graph.ledger import Ledger
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.operations import Operations
from opsgraph.serve.metrics import INCIDENT_BUCKETS, ServeMetrics
from opsgraph.tools.binaries import find_binary
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import load_inventory
from opsgraph.tools.probes import probe_all, timed_probes

MEMORY = "redis_memory_pressure"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        fill_redis_memory(running.inventory.get("cache"))
        yield running


def scrape(metrics: ServeMetrics) -> Exposition:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return Exposition(body.decode())


def assert_histogram(seen: Exposition, name: str, values: list[float]) -> None:
    """The histogram of exactly these observations: per bucket, count and sum."""
    for bound in INCIDENT_BUCKETS:
        assert seen.value(f"{name}_bucket", le=f"{bound}") == sum(v <= bound for v in values), bound
    assert seen.value(f"{name}_bucket", le="+Inf") == seen.value(f"{name}_count") == len(values)
    assert seen.value(f"{name}_sum") == pytest.approx(sum(values))


def test_a_fix_shows_at_the_next_scrape_with_its_times_actions_and_reasoning(stack: Stack) -> None:
    operations = Operations(stack.context(approval="none"))
    metrics = ServeMetrics(operations.ledger)  # before the incident: it reads the ledger at each scrape
    before = scrape(metrics)
    assert before.labelled("opsgraph_incidents_total") == {}
    assert before.value("opsgraph_incidents_escalated_total") == 0
    assert before.value("opsgraph_incident_mttr_seconds_count") == 0

    done = operations.start_fix("cache", operations.new_incident_id("cache"))
    report = done.report
    assert report is not None and report["outcome"] == "resolved", report
    seen = scrape(metrics)

    assert seen.labelled("opsgraph_incidents_total") == {frozenset({("outcome", "resolved"), ("symptom", MEMORY)}): 1}
    assert seen.value("opsgraph_incidents_escalated_total") == seen.value("opsgraph_data_safety_failures_total") == 0
    assert seen.value("opsgraph_incidents_open", status="open") == 0
    assert seen.value("opsgraph_incidents_open", status="awaiting_approval") == 0
    assert seen.value("opsgraph_approvals_pending") == seen.value("opsgraph_approval_oldest_age_seconds") == 0
    assert_histogram(seen, "opsgraph_incident_mttd_seconds", [report["mttd_s"]])
    assert_histogram(seen, "opsgraph_incident_mttr_seconds", [report["mttr_s"]])

    results = [a for a in operations.ledger.actions(done.incident_id) if a["phase"] == "result"]
    expected = Counter((a["tool"], a["status"]) for a in results)
    assert expected[("redis_scale_memory", "ok")] == 1  # (a safe purge may run before it)
    assert {
        (dict(labels)["tool"], dict(labels)["status"]): value
        for labels, value in seen.labelled("opsgraph_actions_total").items()
    } == expected

    # The runbook diagnosed and planned once each, with no model tokens and no fallback.
    calls = {"diagnostician": 1, "planner": 1}
    for node, count in calls.items():
        assert seen.value("opsgraph_reasoning_calls_total", backend="runbook", node=node) == count
    assert seen.value("opsgraph_reasoning_tokens_total", backend="runbook", direction="input") == 0
    assert seen.value("opsgraph_reasoning_tokens_total", backend="runbook", direction="output") == 0
    assert seen.value("opsgraph_reasoning_fallbacks_total") == 0
    assert seen.value("opsgraph_build_info", version=version("opsgraph")) == 1


def test_a_waiting_approval_counts_with_its_age_until_it_is_answered(stack: Stack) -> None:
    operations = Operations(stack.context(approval="risky"))
    asked_from = time.time()
    paused = operations.start_fix("cache", operations.new_incident_id("cache"))
    asked_by = time.time()
    [pending] = operations.pending()
    assert paused.pending is not None and pending.incident_id == paused.incident_id
    now = asked_by + 700  # a scrape 700 s after the plan was recorded
    metrics = ServeMetrics(operations.ledger, clock=lambda: now)

    seen = scrape(metrics)
    assert seen.value("opsgraph_approvals_pending") == 1
    assert seen.value("opsgraph_incidents_open", status="awaiting_approval") == 1
    age = seen.value("opsgraph_approval_oldest_age_seconds")
    assert age is not None and now - asked_by <= age <= now - asked_from
    assert seen.value("opsgraph_incident_mttd_seconds_count") == 0  # nothing closed yet

    operations.answer(pending, {"decision": "reject", "by": "alice", "digests": pending.digests})
    seen = scrape(metrics)
    assert seen.value("opsgraph_approvals_pending") == seen.value("opsgraph_approval_oldest_age_seconds") == 0
    assert seen.value("opsgraph_incidents_open", status="awaiting_approval") == 0
    assert seen.value("opsgraph_incidents_total", outcome="rejected", symptom=MEMORY) == 1
    assert seen.value("opsgraph_incident_mttd_seconds_count") == 1
    assert seen.value("opsgraph_incident_mttr_seconds_count") == 0  # nothing recovered
    assert seen.labelled("opsgraph_actions_total") == {}


def test_an_escalation_counts_on_a_counter_that_was_exposed_at_zero(tmp_path: Path) -> None:
    """The policy ceiling leaves the runbook no plan: a human must choose (outcome escalated)."""
    with running_stack(tmp_path, [redis_resource(maxmemory_mb=32, max_memory_mb=32)]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        operations = Operations(stack.context(approval="none", verify_deadline_s=0.5, max_retries=0))
        metrics = ServeMetrics(operations.ledger)
        assert scrape(metrics).value("opsgraph_incidents_escalated_total") == 0
        done = operations.start_fix("cache", operations.new_incident_id("cache"))
    assert done.report is not None and done.report["outcome"] == "escalated", done.report
    seen = scrape(metrics)
    assert seen.value("opsgraph_incidents_escalated_total") == 1
    assert seen.value("opsgraph_incidents_total", outcome="escalated", symptom=MEMORY) == 1
    assert seen.value("opsgraph_incident_mttr_seconds_count") == 0


def test_reasoning_calls_tokens_and_fallbacks_per_call(stack: Stack) -> None:
    """A backend whose plan names a tool outside the catalogue: refused twice, then the runbook plans instead."""
    backend = ScriptedReasoner([{"tool": "run_shell", "args": {"resource": "cache", "command": "redis-cli flushall"}}])
    context = stack.context(approval="none", reasoner=backend)
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-fallback")
    report = done.report
    assert report is not None and report["outcome"] == "resolved" and len(report["fallbacks"]) == 1
    log = done.values["reasoning_log"]
    assert [(entry["node"], entry["backend"]) for entry in log] == [
        ("diagnostician", "scripted"), ("planner", "scripted"), ("planner", "scripted"), ("planner", "runbook")
    ]  # fmt: skip
    metrics = ServeMetrics(context.ledger)

    # The report carries the graph's reasoning log: counted call by call.
    assert report["reasoning_log"] == log
    seen = scrape(metrics)
    assert seen.labelled("opsgraph_reasoning_calls_total") == {
        frozenset({("backend", "scripted"), ("node", "diagnostician")}): 1,
        frozenset({("backend", "scripted"), ("node", "planner")}): 2,
        frozenset({("backend", "runbook"), ("node", "planner")}): 1,
    }
    assert seen.value("opsgraph_reasoning_fallbacks_total") == 1
    for backend_name in ("scripted", "runbook"):
        spent = [entry["tokens"] for entry in log if entry["backend"] == backend_name]
        for direction in ("input", "output"):
            expected = sum(tokens.get(f"{direction}_tokens", 0) for tokens in spent)
            assert seen.value("opsgraph_reasoning_tokens_total", backend=backend_name, direction=direction) == expected


@pytest.fixture
def users_redis(tmp_path: Path) -> Iterator[OutsideRedis]:
    with outside_redis(tmp_path / "users") as server:
        for index in range(100):
            server.client().set(f"order:{index}", "x" * 100)
        yield server


def test_a_data_safety_failure_stays_counted_after_its_release(users_redis: OutsideRedis, tmp_path: Path) -> None:
    """A declared start command that brings back a Redis on another, empty directory (see test_data_safety)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong_start = [str(find_binary("redis-server")), "--port", str(users_redis.port), "--bind", "127.0.0.1",
                   "--daemonize", "yes", "--dir", str(empty), "--appendonly", "yes", "--save", ""]  # fmt: skip
    entry = {
        "name": "orders-cache", "kind": "redis", "environment": "external",
        "connection": {"host": "127.0.0.1", "port": users_redis.port},
        "external": {"lifecycle": "commands", "commands": {"start": wrong_start}, "timeout_s": 20,
                     "paths": {"config_file": str(users_redis.config_file), "data_dir": str(users_redis.data_dir)}},
    }  # fmt: skip
    inventory = tmp_path / "opsgraph.yaml"
    inventory.write_text(yaml.safe_dump({"version": 1, "resources": [entry]}))
    users_redis.sigkill()
    context = fast_context(inventory, tmp_path / "state", approval="none", verify_deadline_s=5.0)
    metrics = ServeMetrics(context.ledger)
    assert scrape(metrics).value("opsgraph_data_safety_failures_total") == 0
    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, context, "orders-cache", "inc-data")
    assert done.report is not None and done.report["outcome"] == "data_safety_failure", done.report

    held = scrape(metrics)
    assert context.ledger.release("inc-data", "alice")
    for seen in (held, scrape(metrics)):  # a release changes the incident's status, not what was counted
        assert seen.value("opsgraph_data_safety_failures_total") == 1
        assert seen.value("opsgraph_incidents_total", outcome="data_safety_failure", symptom="redis_unreachable") == 1
        assert seen.value("opsgraph_actions_total", tool="redis_restart", status="ok") == 1


def test_alerts_by_source_and_status_and_notifications_by_channel(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    metrics = ServeMetrics(ledger)
    received = [
        ("alertmanager", "firing", "started"),
        ("alertmanager", "firing", "deduplicated"),
        ("alertmanager", "firing", "attached"),
        ("alertmanager", "resolved", "resolved"),
        ("grafana", "firing", "cooldown"),
        ("grafana", "firing", "unknown_resource"),
    ]
    for number, (source, status, outcome) in enumerate(received):
        with ledger.alert_intake() as book:
            book.record(
                source=source, fingerprint=f"fp-{number % 2}", name="RedisMemoryHigh", status=status,
                resource="cache", outcome=outcome, detail=outcome, incident_id=None,
                labels={"alertname": "RedisMemoryHigh"}, annotations={}, starts_at=None,
            )  # fmt: skip
    ledger.record_notification("inc-1", "opened", "slack", "sent", 1, None)
    ledger.record_notification("inc-1", "closed", "slack", "sent", 1, None)
    ledger.record_notification("inc-1", "opened", "email", "failed", 3, "connection refused")
    ledger.record_notification("inc-1", "closed", "email", "sending", 1, None)  # not settled yet

    seen = scrape(metrics)
    assert seen.labelled("opsgraph_alerts_received_total") == {
        frozenset({("source", "alertmanager"), ("status", "firing")}): 3,
        frozenset({("source", "alertmanager"), ("status", "resolved")}): 1,
        frozenset({("source", "grafana"), ("status", "firing")}): 2,
    }
    assert seen.value("opsgraph_alerts_deduplicated_total", source="alertmanager") == 2
    assert seen.value("opsgraph_alerts_deduplicated_total", source="grafana") == 1
    assert seen.labelled("opsgraph_notifications_total") == {
        frozenset({("channel", "slack"), ("status", "sent")}): 2,
        frozenset({("channel", "email"), ("status", "failed")}): 1,
    }
    assert seen.value("opsgraph_notification_failures_total") == 1


def test_sweeps_give_health_probe_errors_durations_and_the_last_sweep(tmp_path: Path) -> None:
    """Real probes of a Redis under memory pressure (up, not healthy), a healthy one, and a port nobody is on."""
    with running_stack(tmp_path, [redis_resource("cache"), redis_resource("sessions")]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        resources = yaml.safe_load(stack.inventory_path.read_text())["resources"]
        watched = tmp_path / "watched.yaml"
        gone = redis_resource("gone")  # never started: nothing listens on its port
        watched.write_text(yaml.safe_dump({"version": 1, "resources": [*resources, gone]}))
        now = 1_800_000_000.0
        metrics = ServeMetrics(stack.context().ledger, clock=lambda: now)
        names = scrape(metrics).sample_names
        assert "opsgraph_watcher_last_sweep_timestamp_seconds" not in names  # no watcher has swept yet
        assert "opsgraph_resource_healthy" not in names

        snapshots = probe_all(load_inventory(watched))
        metrics.swept(snapshots, 0.25)
        timed = timed_probes(load_inventory(watched))
        metrics.swept([s for s, _ in timed], 1.5, [seconds for _, seconds in timed])

    seen = scrape(metrics)
    assert seen.value("opsgraph_watcher_last_sweep_timestamp_seconds") == now
    assert seen.value("opsgraph_resource_healthy", resource="cache", kind="redis") == 0  # memory pressure
    assert seen.value("opsgraph_resource_healthy", resource="sessions", kind="redis") == 1
    assert seen.value("opsgraph_resource_healthy", resource="gone", kind="redis") == 0
    assert seen.value("opsgraph_probe_errors_total", resource="gone", kind="redis") == 2
    assert seen.value("opsgraph_probe_errors_total", resource="cache", kind="redis") == 0  # up: a reading, no error
    assert seen.value("opsgraph_probe_errors_total", resource="sessions", kind="redis") == 0
    assert seen.value("opsgraph_probe_sweep_seconds_count") == 2
    assert seen.value("opsgraph_probe_sweep_seconds_sum") == pytest.approx(1.75)
    assert seen.value("opsgraph_probe_sweep_seconds_bucket", le="0.25") == 1
    assert seen.value("opsgraph_probe_sweep_seconds_bucket", le="1.0") == 1
    assert seen.value("opsgraph_probe_sweep_seconds_bucket", le="2.5") == 2
    # One probe per resource timed in the second sweep, by kind.
    assert seen.value("opsgraph_probe_seconds_count", kind="redis") == 3
    assert seen.value("opsgraph_probe_seconds_sum", kind="redis") == pytest.approx(sum(s for _, s in timed))
    [gone_snapshot] = [s for s in snapshots if s.resource == "gone"]
    assert gone_snapshot.symptom == "redis_unreachable"
