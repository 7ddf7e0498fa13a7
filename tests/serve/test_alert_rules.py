"""The shipped alert rules and Grafana dashboard, checked by promtool and by a real Prometheus.

A real Prometheus scrapes `ServeMetrics.render()` (served by a stdlib HTTP server until
`opsgraph serve` mounts it), loads deploy/prometheus/opsgraph-rules.yml, and a real escalation
by the real graph on a real Redis makes OpsGraphIncidentEscalated fire.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prom_support import Exposition, prometheus, promtool, scrape_job
from support import redis_resource, running_stack

from opsgraph.graph.ledger import Ledger
from opsgraph.operations import Operations
from opsgraph.serve.metrics import ServeMetrics
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.snapshot import Health, Snapshot

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/opsgraph-rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/opsgraph-rules.test.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/opsgraph.json"
METRIC_NAME = re.compile(r"\bopsgraph_[a-z0-9_]+")
# What Grafana puts in for its own variables, so that Prometheus can run a panel's query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*"}


def rules() -> list[dict[str, Any]]:
    [group] = yaml.safe_load(RULES.read_text())["groups"]
    assert group["name"] == "opsgraph"
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def panel_queries(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def exposed_names(tmp_path: Path) -> tuple[set[str], set[str]]:
    """(sample names, family names) that ServeMetrics exposes, every family present (a sweep included)."""
    metrics = ServeMetrics(Ledger(tmp_path / "ledger.sqlite"))
    metrics.swept([Snapshot(resource="cache", kind="redis", health=Health.HEALTHY, taken_at=0.0)], 0.1)
    seen = Exposition(metrics.render()[0].decode())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}
    families = {name for name in seen.families if not name.endswith("_created")}
    samples = {name + suffix for name in families for suffix in suffixes[seen.families[name].type]}
    return samples, families


def test_the_shipped_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_rule_is_labelled_annotated_unit_tested_and_reads_exposed_metrics(tmp_path: Path) -> None:
    samples, _ = exposed_names(tmp_path)
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in cases for c in t["alert_rule_test"] if not c["exp_alerts"]}
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= rule["annotations"].keys(), name
        assert name in fired and name in quiet, f"{name}: the unit tests must see it fire and stay quiet"
        assert set(METRIC_NAME.findall(rule["expr"])) <= samples, name


def test_the_dashboard_is_templated_and_shows_what_servemetrics_exposes(tmp_path: Path) -> None:
    board = dashboard()
    samples, families = exposed_names(tmp_path)
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    shown: set[str] = set()
    for panel in board["panels"]:
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            used = set(METRIC_NAME.findall(target["expr"]))
            assert used <= samples, f"{panel['title']}: {used - samples} not exposed"
            assert used or 'up{job="opsgraph"' in target["expr"], panel["title"]
            shown |= used
    shown_families = {family for family in families if any(name.startswith(family) for name in shown)}
    assert shown_families == families, f"no panel shows {families - shown_families}"


class _Metrics(BaseHTTPRequestHandler):
    metrics: ServeMetrics

    def do_GET(self) -> None:
        body, content_type = self.metrics.render()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the stdlib writes a line to stderr per request (per scrape here)."""


@contextmanager
def serving(metrics: ServeMetrics) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """`/metrics` on a free loopback port: (host:port, the server), stopped at exit."""
    handler = type("Handler", (_Metrics,), {"metrics": metrics})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.timeout(120)
def test_a_real_prometheus_scrapes_the_metrics_and_a_real_escalation_fires_its_rule(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource(maxmemory_mb=32, max_memory_mb=32)]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        operations = Operations(stack.context(approval="none", verify_deadline_s=0.5, max_retries=0))
        metrics = ServeMetrics(operations.ledger)
        with (
            serving(metrics) as (address, server),
            prometheus(tmp_path / "prometheus", [scrape_job("opsgraph", address)], rule_files=[RULES]) as prom,
        ):
            prom.wait_for_target("opsgraph")
            prom.wait_for_value('opsgraph_incidents_escalated_total{job="opsgraph"}', lambda value: value == 0)
            [group] = prom.rules()
            assert [rule["name"] for rule in group["rules"]] == [rule["alert"] for rule in rules()]
            assert {rule["health"] for rule in group["rules"]} == {"ok"}, group["rules"]

            # The policy ceiling leaves the runbook no plan: the real graph escalates to a human.
            done = operations.start_fix("cache", operations.new_incident_id("cache"))
            assert done.report is not None and done.report["outcome"] == "escalated", done.report
            alert = prom.wait_for_alert("OpsGraphIncidentEscalated")
            assert alert["labels"] == {
                "alertname": "OpsGraphIncidentEscalated",
                "severity": "critical",
                "job": "opsgraph",
                "instance": address,
            }
            assert alert["annotations"]["summary"] == "OpsGraph escalated an incident to a human"
            assert [a["labels"]["alertname"] for a in prom.alerts()] == ["OpsGraphIncidentEscalated"]

            # Every panel of the dashboard is a query this Prometheus runs (its syntax and functions hold).
            for expr in panel_queries(dashboard()):
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                prom.query(expr)

            # OpsGraph stops answering: the next scrape fails and OpsGraphDown is pending (firing after 1 min).
            server.shutdown()
            server.server_close()
            down = prom.wait_for_alert("OpsGraphDown", state="pending")
            assert down["labels"]["instance"] == address and down["labels"]["severity"] == "critical"
