"""Every nginx tool and the probe, against a real private nginx started by the local environment."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Stack, free_port, running_stack, tool_output, wait_for

from opsgraph.agents.records import PlanStep
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import StepVerdict
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.environments.local.nginx_server import LocalNginx
from opsgraph.tools.faults.nginx import holder_state_file, overload_connections, stop_connection_holder
from opsgraph.tools.inventory import ResourceKind, parse_inventory
from opsgraph.tools.nginx_tools import config as nginx_config
from opsgraph.tools.nginx_tools import read_stub_status
from opsgraph.tools.probes import probe
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(60)

WORKER_CONNECTIONS = 128


def nginx_resource(name: str = "edge", **local: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "nginx",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": free_port()},
        "local": {"worker_connections": WORKER_CONNECTIONS, **local},
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [nginx_resource()]) as running:
        yield running


def tools(stack: Stack) -> ToolContext:
    return ToolContext(inventory=stack.inventory, state_dir=stack.state_dir)


def run(stack: Stack, tool: str, **args: Any) -> ToolOutcome:
    return run_tool(tool, {"resource": "edge", **args}, tools(stack), 20)


def nginx_of(stack: Stack) -> LocalNginx:
    return LocalNginx.of(stack.state_dir, "edge")


def serves(stack: Stack) -> bool:
    response = httpx.get(f"http://127.0.0.1:{stack.inventory.get('edge').connection.port}/", timeout=3)
    return response.status_code == 200 and response.text == "ok\n"


def test_catalogue_declares_nginx_risks() -> None:
    risks = {name: spec.risk for name, spec in CATALOGUE.items() if spec.target_kind is ResourceKind.NGINX}
    assert risks == {
        "nginx_info": Risk.READ,
        "nginx_reload": Risk.SAFE,
        "nginx_restart": Risk.DISRUPTIVE,
        "nginx_scale_connections": Risk.DISRUPTIVE,
        "nginx_clear_connections": Risk.DISRUPTIVE,
    }


def test_info_reads_status_and_capacity_from_the_live_config(stack: Stack) -> None:
    info = tool_output(run(stack, "nginx_info"))
    assert info["reachable"] is True and info["status"]["active"] >= 1
    assert (info["worker_connections"], info["worker_processes"], info["capacity"]) == (WORKER_CONNECTIONS, 1, 128)
    assert info["recent_requests"]["total"] == 0 and info["recent_requests"]["error_rate_pct"] is None
    assert info["error_log"] == [] and info["upstream"] is None and info["runtime_override"] is None
    snapshot = probe(stack.inventory.get("edge"))
    assert snapshot.health is Health.HEALTHY
    assert snapshot.metrics["capacity"] == WORKER_CONNECTIONS


def test_overload_is_seen_and_scaling_relieves_it_for_good(stack: Stack) -> None:
    edge = stack.inventory.get("edge")
    injected = overload_connections(edge, tools(stack))
    try:
        loaded = probe(edge)
        assert loaded.health is Health.FAILED and loaded.symptom == "nginx_connection_pressure"
        assert float(loaded.metrics["connections_used_pct"] or 0) >= 95
        assert "of capacity 128 (worker_connections 128 x 1 workers" in loaded.reasons[0]
        assert tool_output(run(stack, "nginx_info"))["status"]["reading"] >= 100  # slow clients, mid-request

        lowered = run(stack, "nginx_scale_connections", worker_connections=64)
        assert not lowered.ok and "refusing to make pressure worse" in str(lowered.error)
        scaled = tool_output(run(stack, "nginx_scale_connections", worker_connections=256))
        assert scaled["previous_worker_connections"] == 128 and scaled["capacity"] == 256
        assert "worker_connections 256;" in nginx_of(stack).config_path.read_text()
        # The holder re-opens what the reload closed: the relief must hold under the same load.
        wait_for(lambda: read_stub_status(edge).active >= injected["active_connections"], "the clients to reconnect")
        relieved = probe(edge)
        assert relieved.health is Health.HEALTHY, relieved.reasons
        assert relieved.metrics["capacity"] == 256
    finally:
        stopped = stop_connection_holder(edge, tools(stack))
    assert stopped["stopped"] == injected["holder_pid"]
    assert not holder_state_file(edge, tools(stack)).exists()
    wait_for(lambda: read_stub_status(edge).active <= 2, "the held connections to close", timeout_s=15)


def test_the_connection_holder_leaves_by_itself_when_its_lifetime_is_up(stack: Stack) -> None:
    edge = stack.inventory.get("edge")
    overload_connections(edge, tools(stack), lifetime_s=3)
    wait_for(lambda: read_stub_status(edge).active <= 2, "the holder to let go", timeout_s=15)
    assert not holder_state_file(edge, tools(stack)).exists()
    assert stop_connection_holder(edge, tools(stack)) == {"stopped": None}


def test_a_change_nginx_t_rejects_is_rolled_back_and_nginx_keeps_serving(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    nginx = nginx_of(stack)
    before, master = nginx.config_path.read_text(), nginx.master_pid()

    def broken(config: str, value: int) -> str:
        return config.replace("worker_connections 128;", f"worker_connections {value}; no_such_directive on;")

    monkeypatch.setattr(nginx_config, "with_worker_connections", broken)
    outcome = run(stack, "nginx_scale_connections", worker_connections=256)
    assert not outcome.ok and "nginx -t rejected the change" in str(outcome.error)
    assert 'unknown directive "no_such_directive"' in str(outcome.error)
    assert nginx.config_path.read_text() == before
    assert nginx.master_pid() == master and serves(stack)
    assert probe(stack.inventory.get("edge")).metrics["capacity"] == WORKER_CONNECTIONS
    assert nginx.override() is None


def test_a_reload_nginx_refuses_is_rolled_back(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`nginx -t` does not bind ports: a listen on a busy port passes it and fails at reload."""
    nginx = nginx_of(stack)
    before = nginx.config_path.read_text()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]

        def unbindable(config: str, value: int) -> str:
            changed = config.replace("worker_connections 128;", f"worker_connections {value};")
            return changed.replace(
                "server_name localhost;", f"server_name localhost;\n        listen 127.0.0.1:{taken};"
            )

        monkeypatch.setattr(nginx_config, "with_worker_connections", unbindable)
        outcome = run(stack, "nginx_scale_connections", worker_connections=256)
    assert not outcome.ok
    assert "refused the reload" in str(outcome.error) and "Address already in use" in str(outcome.error)
    assert "config restored and reloaded" in str(outcome.error)
    assert nginx.config_path.read_text() == before and serves(stack)
    # Right after the reloads, the worker that answers stub_status may be an old one on its way out
    # (gone from /proc by the time the probe looks for its nginx): capacity is then unknown for a moment.
    edge = stack.inventory.get("edge")
    wait_for(lambda: probe(edge).metrics["capacity"] == WORKER_CONNECTIONS, "the probe to read the restored capacity")


def test_reload_runs_nginx_t_first_and_refuses_a_broken_config(stack: Stack) -> None:
    nginx = nginx_of(stack)
    good = nginx.config_path.read_text()
    nginx.config_path.write_text(good + "\nbroken {\n")
    refused = run(stack, "nginx_reload")
    assert not refused.ok and "nginx -t failed, not reloading" in str(refused.error)
    assert 'unknown directive "broken"' in str(refused.error)
    assert serves(stack)

    nginx.config_path.write_text(good)
    master = nginx.master_pid()
    assert master is not None
    old_workers = nginx.worker_pids(master)
    reloaded = tool_output(run(stack, "nginx_reload"))
    assert reloaded["workers"] and not set(reloaded["workers"]) & old_workers
    assert serves(stack)


def test_clear_connections_closes_idle_keepalive_connections(stack: Stack) -> None:
    port = stack.inventory.get("edge").connection.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for sock in idle:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        cleared = tool_output(run(stack, "nginx_clear_connections"))
        assert cleared["active_before"] >= 21 and cleared["waiting_before"] >= 20
        assert cleared["active_after"] <= 2 and cleared["closed"] >= 19
        assert cleared["old_workers_still_running"] == []
        readable, _, _ = select.select(idle, [], [], 2)
        assert len(readable) == len(idle) and all(sock.recv(1) == b"" for sock in readable)  # closed by nginx
    finally:
        for sock in idle:
            sock.close()


def test_a_scaled_value_survives_restarts_until_the_inventory_changes(stack: Stack) -> None:
    nginx = nginx_of(stack)
    assert tool_output(run(stack, "nginx_scale_connections", worker_connections=256))["kept_across_restarts"] is True
    old_master = nginx.master_pid()
    restarted = tool_output(run(stack, "nginx_restart"))
    assert restarted["running"] is True and restarted["pid"] != old_master
    assert tool_output(run(stack, "nginx_info"))["capacity"] == 256

    # Back to the inventory's value: nothing left to keep.
    tool_output(run(stack, "nginx_scale_connections", worker_connections=WORKER_CONNECTIONS))
    assert nginx.override() is None
    tool_output(run(stack, "nginx_scale_connections", worker_connections=256))

    # The operator edits the inventory afterwards: the newer intent wins at the next start.
    data = stack.inventory.model_dump(mode="json")
    data["resources"][0]["local"]["worker_connections"] = 192
    edited = parse_inventory(data)
    LocalStack(stack.state_dir, edited).restart("edge")
    assert nginx.override() is None
    assert probe(edited.get("edge")).metrics["capacity"] == 192


def test_limits_and_unreachable_targets_are_data(tmp_path: Path) -> None:
    inventory = parse_inventory(
        {
            "resources": [
                {"name": "edge", "kind": "nginx", "connection": {"port": free_port()}},
                {"name": "far", "kind": "nginx", "environment": "docker", "connection": {"port": free_port()}},
            ]
        }
    )
    ctx = ToolContext(inventory=inventory, state_dir=tmp_path)
    ceiling = run_tool("nginx_scale_connections", {"resource": "edge", "worker_connections": 100_000}, ctx, 5)
    assert not ceiling.ok and "policy ceiling of 4096" in str(ceiling.error)
    never_started = run_tool("nginx_reload", {"resource": "edge"}, ctx, 5)
    assert not never_started.ok and "start it with `opsgraph up`" in str(never_started.error)
    elsewhere = run_tool("nginx_clear_connections", {"resource": "far"}, ctx, 5)
    assert not elsewhere.ok and "acts on external or local resources, far runs in docker" in str(elsewhere.error)
    info = tool_output(run_tool("nginx_info", {"resource": "far"}, ctx, 5))
    assert info["reachable"] is False and info["capacity"] is None

    snapshot = probe(inventory.get("far"))
    assert snapshot.health is Health.FAILED and snapshot.symptom == "nginx_unreachable"

    def review(resource: str, value: int) -> StepVerdict:
        step = PlanStep(
            tool="nginx_scale_connections",
            args={"resource": resource, "worker_connections": value},
            rationale="test",
            expected_effect="test",
        )
        return review_step(0, step, inventory, {"edge", "far"}, ApprovalMode.NONE).verdict

    assert review("edge", 512) is StepVerdict.RUN
    assert review("edge", 100_000) is StepVerdict.REFUSE
    assert review("far", 512) is StepVerdict.REFUSE  # config changes need a local nginx
