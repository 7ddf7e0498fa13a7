"""Nginx incidents end to end through the graph with the runbook backend, against a real private nginx."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support import Stack, free_port, running_stack, wait_for

from opsgraph.graph.fixing import fix_all
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.environments.local.nginx_server import LocalNginx
from opsgraph.tools.faults import scenario_named
from opsgraph.tools.faults.nginx import stop_connection_holder
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.nginx_tools import read_stub_status
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(90)


def edge(**local: Any) -> dict[str, Any]:
    return {
        "name": "edge",
        "kind": "nginx",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": free_port()},
        "local": {"worker_connections": 128, **local},
    }


def tools(inventory: Inventory, state_dir: Path) -> ToolContext:
    return ToolContext(inventory=inventory, state_dir=state_dir)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [edge()]) as running:
        yield running


def test_connection_overload_is_detected_scaled_and_verified(stack: Stack) -> None:
    target = stack.inventory.get("edge")
    ctx = tools(stack.inventory, stack.state_dir)
    injected = scenario_named("nginx-connection-overload").inject(target, ctx)
    try:
        results = fix_all(stack.context(approval="none"), lambda request: None)
        [report] = [result.report for result in results]
        assert report is not None
        assert report["resolved"] is True, report["outcome_detail"]
        assert report["symptom"] == "nginx_connection_pressure"
        assert "worker_connections 128 is too low" in report["root_cause"]
        assert report["actions"] == [
            {
                "tool": "nginx_scale_connections",
                "args": {"resource": "edge", "worker_connections": 256},
                "status": "ok",
                "error": None,
                "data_survived": True,
            }
        ]
        assert report["metrics_before"]["connections_used_pct"] >= 95
        assert report["metrics_after"]["connections_used_pct"] < 80
        # Still fixed once the clients have re-opened what the reload closed.
        wait_for(lambda: read_stub_status(target).active >= injected["active_connections"], "the clients to return")
        assert probe(target).health is Health.HEALTHY
    finally:
        stop_connection_holder(target, ctx)


class FailingApp(http.server.BaseHTTPRequestHandler):
    """An upstream that answers, but only with 503."""

    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"down\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_5xx_nginx_relays_are_not_its_incident_but_a_dead_upstream_is_traced_and_escalated(tmp_path: Path) -> None:
    app_port = free_port()
    shop = {"name": "shop", "kind": "http", "environment": "docker", "connection": {"port": app_port}}
    with running_stack(tmp_path, [shop, edge(upstream="shop")]) as stack:
        target = stack.inventory.get("edge")
        url = f"http://127.0.0.1:{target.connection.port}/products"
        app = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), FailingApp)
        threading.Thread(target=app.serve_forever, daemon=True).start()
        try:
            assert {httpx.get(url, timeout=5).status_code for _ in range(12)} == {503}
        finally:
            app.shutdown()
            app.server_close()
        relayed = probe(target)
        assert relayed.health is Health.HEALTHY and relayed.metrics["relayed_5xx"] == 12  # the app's incident

        assert {httpx.get(url, timeout=5).status_code for _ in range(12)} == {502}  # now nobody answers
        seen = probe(target)
        assert seen.health is Health.FAILED and seen.symptom == "nginx_errors"
        assert seen.metrics["error_rate_pct"] == 50.0
        assert "12 of 24 requests in the last 30 s got a 5xx made by nginx" in seen.reasons[0]

        with incident_graph(stack.state_dir) as graph:
            done = start_incident(graph, stack.context(approval="none"), "edge", "inc-nginx-errors")
        report = done.report
        assert report is not None and report["outcome"] == "escalated"
        assert report["actions"] == []
        assert report["root_cause"].startswith("the 5xx come from shop: shop does not answer")
        assert "the fault is upstream" in report["outcome_detail"]


def test_a_stopped_nginx_is_restarted(stack: Stack) -> None:
    nginx = LocalNginx.of(stack.state_dir, "edge")
    master = nginx.master_pid()
    assert master is not None
    os.kill(master, signal.SIGQUIT)
    wait_for(lambda: nginx.master_pid() is None, "nginx to stop")
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, stack.context(approval="none"), "edge", "inc-nginx-down")
    report = done.report
    assert report is not None and report["resolved"] is True, report and report["outcome_detail"]
    assert report["symptom"] == "nginx_unreachable"
    assert [(a["tool"], a["status"]) for a in report["actions"]] == [("nginx_restart", "ok")]
    assert nginx.master_pid() not in (None, master)


def test_demo_cli_resolves_the_overload(tmp_path: Path) -> None:
    inventory_path, state_dir = tmp_path / "opsgraph.yaml", tmp_path / "state"
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": [edge()]}))
    inventory = load_inventory(inventory_path)
    command = [
        sys.executable, "-m", "opsgraph", "demo", "nginx-connection-overload", "--approval", "none", "--json",
        "--inventory", str(inventory_path), "--state-dir", str(state_dir),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=80, check=False)
        assert result.returncode == 0, result.stderr
        [record] = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert record["resource"] == "edge" and record["resolved"] is True
        assert [action["tool"] for action in record["actions"]] == ["nginx_scale_connections"]
    finally:
        stopped = stop_connection_holder(inventory.get("edge"), tools(inventory, state_dir))
        LocalStack(state_dir, inventory).down()
    assert stopped["stopped"] is not None  # the detached holder outlived the CLI, as it must
