"""The nginx tools, the probe and the runbooks on an nginx started outside OpsGraph (tests/outside_nginx.py)."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from outside_nginx import OutsideNginx, outside_nginx
from support import fast_context, tool_output, wait_for

from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.environments.nginx_control import NginxControl
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.nginx_tools import config as nginx_config
from opsgraph.tools.probes import probe
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[OutsideNginx]:
    with outside_nginx(tmp_path / "outside") as server:
        yield server


@pytest.fixture
def full_nginx(tmp_path: Path) -> Iterator[OutsideNginx]:
    """16 slots in one worker: less the listening socket and the master's channel, 14 for clients."""
    with outside_nginx(tmp_path / "outside", worker_connections=16) as server:
        yield server


def inventory_of(folder: Path, server: OutsideNginx, **external: Any) -> Path:
    path = folder / "opsgraph.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "resources": [server.resource(**external)]}))
    return path


def tools(folder: Path, inventory: Inventory) -> ToolContext:
    return ToolContext(inventory=inventory, state_dir=folder / "state")


def run(ctx: ToolContext, tool: str, **args: Any) -> ToolOutcome:
    return run_tool(tool, {"resource": "web", **args}, ctx, 20)


def graph_context(folder: Path, inventory_path: Path) -> Context:
    return fast_context(inventory_path, folder / "state", approval="none", verify_deadline_s=20.0)


def test_info_reads_the_external_nginx_from_its_declared_paths(tmp_path: Path, nginx: OutsideNginx) -> None:
    inventory = load_inventory(inventory_of(tmp_path, nginx))
    info = tool_output(run(tools(tmp_path, inventory), "nginx_info"))
    assert info["reachable"] is True and info["saturated"] is False
    assert (info["worker_connections"], info["worker_processes"], info["capacity"]) == (64, 1, 64)
    assert info["config_file"] == str(nginx.config_file) and info["config_test"]["ok"] is True
    assert info["error_log_file"] == str(nginx.error_log)
    assert info["worker_shutdown_timeout_s"] == 2.0
    assert info["master_pid"] == nginx.master_pid() and info["workers"]
    assert "runtime_override" not in info  # a local-environment concept
    snapshot = probe(inventory.get("web"))
    assert snapshot.health is Health.HEALTHY, snapshot.reasons
    assert snapshot.metrics["capacity"] == 64


def test_scaling_edits_its_own_config_and_a_broken_change_is_rolled_back(
    tmp_path: Path, nginx: OutsideNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No reload command declared: the reload is SIGHUP to the master of the declared pid file."""
    inventory = load_inventory(inventory_of(tmp_path, nginx))
    ctx = tools(tmp_path, inventory)
    original, master = nginx.config_file.read_text(), nginx.master_pid()
    nginx.config_file.chmod(0o640)
    scaled = tool_output(run(ctx, "nginx_scale_connections", worker_connections=128))
    assert scaled["previous_worker_connections"] == 64 and scaled["capacity"] == 128
    assert scaled["config_file"] == str(nginx.config_file) and scaled["kept_across_restarts"] is True
    assert nginx.config_file.read_text() == original.replace("worker_connections 64;", "worker_connections 128;")
    assert nginx.config_file.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "state" / "external" / "web" / "nginx.conf.bak").read_text() == original
    assert sorted(path.name for path in nginx.config_file.parent.iterdir()) == ["nginx.conf"]  # nothing left beside
    assert nginx.master_pid() == master and nginx.serves()
    wait_for(lambda: probe(inventory.get("web")).metrics["capacity"] == 128, "the probe to read the new capacity")

    scaled_config = nginx.config_file.read_bytes()

    def broken(config: str, value: int) -> str:
        return config.replace("worker_connections 128;", f"worker_connections {value}; no_such_directive on;")

    monkeypatch.setattr(nginx_config, "with_worker_connections", broken)
    refused = run(ctx, "nginx_scale_connections", worker_connections=256)
    assert not refused.ok and "nginx -t rejected the change" in str(refused.error)
    assert 'unknown directive "no_such_directive"' in str(refused.error)
    assert nginx.config_file.read_bytes() == scaled_config
    assert nginx.master_pid() == master and nginx.serves()


def _closed_by_nginx(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_full_nginx_is_exhausted_not_down_and_is_freed_without_a_restart(
    tmp_path: Path, full_nginx: OutsideNginx
) -> None:
    """The declared reload command is used; the stalled uploads are the connections that go.

    The first time a graceful reload frees every slot; full again right after it, the load is
    real and worker_connections is raised. The master is never replaced.
    """
    nginx = full_nginx
    inventory_path = inventory_of(
        tmp_path, nginx, lifecycle="commands", commands={"start": nginx.argv(), "reload": nginx.argv("-s", "reload")}
    )
    web = load_inventory(inventory_path).get("web")
    master = nginx.master_pid()
    held = nginx.hold_uploads()
    assert len(held) >= 12  # of 16 slots: nginx's listening socket and its channel to the master take two
    full = probe(web)
    assert full.health is Health.FAILED and full.symptom == "nginx_connections_exhausted", full.reasons
    assert full.metrics["capacity"] == 16 and len(held) <= int(full.metrics["established_connections"] or 0) <= 16
    assert "accepts connections but closes them without an answer" in full.reasons[0]

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, graph_context(tmp_path, inventory_path), "web", "inc-full")
    report = done.report
    assert report is not None and report["resolved"] is True, report and report["outcome_detail"]
    assert report["symptom"] == "nginx_connections_exhausted"
    assert "nginx is up, not down" in report["root_cause"]
    assert [(action["tool"], action["status"]) for action in report["actions"]] == [("nginx_clear_connections", "ok")]
    assert nginx.master_pid() == master and nginx.serves()
    readable, _, _ = select.select(held, [], [], 10)
    assert len(readable) == len(held) and all(_closed_by_nginx(sock) for sock in held)
    assert probe(web).health is Health.HEALTHY

    # Full again right after that reload: the load is real, so worker_connections goes up.
    config = nginx.config_file.read_text()
    nginx.hold_uploads()
    assert probe(web).symptom == "nginx_connections_exhausted"
    with incident_graph(tmp_path / "state") as graph:
        again = start_incident(graph, graph_context(tmp_path, inventory_path), "web", "inc-full-again").report
    assert again is not None and again["resolved"] is True, again and again["outcome_detail"]
    assert [(action["tool"], action["args"].get("worker_connections")) for action in again["actions"]] == [
        ("nginx_scale_connections", 32)
    ]
    assert nginx.config_file.read_text() == config.replace("worker_connections 16;", "worker_connections 32;")
    assert nginx.master_pid() == master and nginx.serves()


def test_a_broken_config_on_disk_is_a_finding_and_escalates_while_nginx_serves(
    tmp_path: Path, nginx: OutsideNginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory_path = inventory_of(tmp_path, nginx)
    web = load_inventory(inventory_path).get("web")
    tests_run: list[list[str]] = []
    real_test = NginxControl.test_config

    def counted(self: NginxControl, timeout_s: float = 10.0) -> Any:
        tests_run.append(self.command())
        return real_test(self, timeout_s)

    monkeypatch.setattr(NginxControl, "test_config", counted)
    for _ in range(5):
        assert probe(web).health is Health.HEALTHY
    assert len(tests_run) == 1  # cached by the config file's mtime and size
    # Its own config, with the prefix its master was started with.
    assert tests_run[0][-4:] == ["-p", f"{nginx.prefix}/", "-c", str(nginx.config_file)]

    master = nginx.master_pid()
    nginx.config_file.write_text(nginx.config_file.read_text() + "\nbroken {\n")
    edited = nginx.config_sha256()
    found = probe(web)
    assert len(tests_run) == 2
    assert found.health is Health.DEGRADED and found.symptom == "nginx_config_invalid"
    assert 'unknown directive "broken"' in found.reasons[0] and "the next reload will fail" in found.reasons[0]
    assert nginx.serves() and nginx.master_pid() == master

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, graph_context(tmp_path, inventory_path), "web", "inc-config")
    report = done.report
    assert report is not None and report["outcome"] == "escalated", report and report["outcome_detail"]
    assert report["actions"] == []
    assert "fails nginx -t" in report["root_cause"] and 'unknown directive "broken"' in report["outcome_detail"]
    assert nginx.config_sha256() == edited and nginx.serves() and nginx.master_pid() == master
