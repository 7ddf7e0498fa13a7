"""The `opsgraph` command line, run as a real subprocess against real local servers."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from outside_redis import outside_redis
from support import Cli, free_port, redis_resource, running_stack, shop_resources, stop, wait_for, watching

from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import load_inventory

pytestmark = pytest.mark.timeout(180)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as one JSON object (the `--json` and log convention)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    try:
        yield runner
    finally:
        runner.down()


def test_demo_json_contract(cli: Cli) -> None:
    result = cli("demo", "redis-memory-pressure", "--approval", "none", "--json")
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["resource"] == "cache"
    assert record["resolved"] is True
    assert isinstance(record["mttd_s"], float) and isinstance(record["mttr_s"], float)
    assert "maxmemory" in str(record["root_cause"])
    assert record["actions"] == [
        {
            "tool": "redis_scale_memory",
            "args": {"resource": "cache", "maxmemory_mb": 48},
            "status": "ok",
            "error": None,
            "data_survived": True,
        }
    ]
    assert record["data_safety"] == []
    for node in ("detector", "diagnostician", "planner", "approval", "executor", "verifier", "report"):
        assert node in result.stderr  # progress per node


def test_fix_asks_in_the_terminal_and_records_the_approver(cli: Cli) -> None:
    assert cli("up").returncode == 0
    assert cli("inject", "redis-memory-pressure").returncode == 0
    result = cli("fix", "--approver", "frank", stdin="y\n")
    assert result.returncode == 0, result.stderr
    assert "Approval needed" in result.stderr
    assert "Approve? [y/N]" in result.stderr  # printed as text, not eaten as rich markup
    assert "RESOLVED" in result.stdout and "MTTR" in result.stdout
    listing = cli("incidents")
    assert "resolved" in listing.stdout
    incident_id = listing.stdout.split()[0]
    shown = json.loads(cli("incidents", "show", incident_id).stdout)
    assert shown["approvals"][0]["decided_by"] == "frank"
    assert f"digest: {shown['approvals'][0]['digest']}" in result.stderr  # what was shown is what was approved
    assert [row["phase"] for row in shown["actions"]] == ["intent", "result"]
    [listed] = json_lines(cli("incidents", "--json").stdout)
    assert listed["incident_id"] == incident_id and listed["status"] == "resolved"
    [record] = json_lines(cli("incidents", "show", incident_id, "--json").stdout)
    assert record["approvals"] == shown["approvals"] and record["actions"] == shown["actions"]


def test_fix_without_an_answer_leaves_the_incident_paused(cli: Cli) -> None:
    cli("up")
    cli("inject", "redis-memory-pressure")
    result = cli("fix", "--json", stdin="")
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["outcome"] == "awaiting_approval" and record["resolved"] is False
    assert "awaiting_approval" in cli("incidents").stdout
    # a second fix does not open a second incident for the same fault
    [again] = json_lines(cli("fix", "--json", "--approval", "none").stdout)
    assert again["outcome"] == "duplicate"


def test_scan_and_status(cli: Cli) -> None:
    cli("up")
    scan = cli("scan")
    assert scan.returncode == 0, scan.stderr
    assert "cache" in scan.stdout and "healthy" in scan.stdout
    assert "running" in cli("status").stdout
    cli("down")
    assert "stopped" in cli("status").stdout
    scan = cli("scan")
    assert scan.returncode == 1  # something is unhealthy
    assert "failed" in scan.stdout


def test_reporting_commands_print_json_lines_and_scan_exits_by_health(cli: Cli) -> None:
    assert cli("up").returncode == 0
    scan = cli("scan", "--json")
    assert scan.returncode == 0, scan.stderr
    [healthy] = json_lines(scan.stdout)
    assert (healthy["resource"], healthy["health"], healthy["run_by"]) == ("cache", "healthy", "OpsGraph (local)")
    [server] = json_lines(cli("status", "--json").stdout)
    assert (server["name"], server["state"], server["managed_by_opsgraph"]) == ("cache", "running", True)

    injected = cli("inject", "redis-memory-pressure", "--json")
    assert injected.returncode == 0, injected.stderr
    [fault] = json_lines(injected.stdout)
    assert (fault["scenario"], fault["resource"]) == ("redis-memory-pressure", "cache")
    scan = cli("scan", "--json")
    assert scan.returncode == 1
    [failed] = json_lines(scan.stdout)
    assert failed["health"] == "failed" and failed["symptom"] == "redis_memory_pressure", failed

    [undone] = json_lines(cli("reset", "redis-memory-pressure", "--json").stdout)
    assert undone["resource"] == "cache" and undone["keys_deleted"] > 0
    assert cli("scan", "--json").returncode == 0


def test_scan_of_a_bad_inventory_exits_2(cli: Cli) -> None:
    cli.inventory.write_text("resources: [{name: cache, kind: mongodb}]\n")
    result = cli("scan", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "resources[0].kind" in result.stderr


def test_version_is_the_package_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opsgraph", "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == f"opsgraph {version('opsgraph')}"


def test_status_and_scan_name_servers_opsgraph_did_not_start(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the scan table's cells stay on one line
    with outside_redis(tmp_path / "users") as users, outside_redis(tmp_path / "squatter") as squatter:
        mine = {**redis_resource(), "connection": {"host": "127.0.0.1", "port": squatter.port}}
        theirs = {
            "name": "sessions", "kind": "redis", "environment": "external",
            "connection": {"host": "127.0.0.1", "port": users.port},
        }  # fmt: skip
        cli.inventory.write_text(yaml.safe_dump({"version": 1, "resources": [mine, theirs]}))
        status = cli("status")
        assert status.returncode == 0, status.stderr
        lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
        assert "running (not managed by OpsGraph: another server holds the port)" in lines["cache"]
        assert "running (not managed by OpsGraph; lifecycle: none)" in lines["sessions"]
        scan = cli("scan")
        assert "not managed by OpsGraph" in scan.stdout and "OpsGraph (local)" in scan.stdout
        users.sigkill()
        assert "not answering (not managed by OpsGraph; lifecycle: none)" in cli("status").stdout


def test_malformed_inventory_is_rejected_with_the_field(cli: Cli) -> None:
    cli.inventory.write_text("resources:\n  - name: cache\n    kind: redis\n    connection: {port: nope}\n")
    result = cli("fix")
    assert result.returncode == 2
    assert "resources[0].connection.port" in result.stderr


def test_unknown_scenario_lists_the_known_ones(cli: Cli) -> None:
    result = cli("inject", "disk-full")
    assert result.returncode == 2
    assert "unknown scenario 'disk-full'" in result.stderr and "redis-memory-pressure" in result.stderr


def test_inject_then_reset_takes_the_fault_away(cli: Cli) -> None:
    assert cli("up").returncode == 0
    assert cli("inject", "redis-memory-pressure").returncode == 0
    assert "failed" in cli("scan").stdout
    result = cli("reset", "redis-memory-pressure")
    assert result.returncode == 0, result.stderr
    assert "keys_deleted" in result.stderr
    assert "failed" not in cli("scan").stdout


def test_tools_lists_the_whole_catalogue() -> None:
    from opsgraph.tools.catalogue import CATALOGUE

    result = subprocess.run(
        [sys.executable, "-m", "opsgraph", "tools"],
        capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert all(name in result.stdout for name in CATALOGUE), result.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "opsgraph", "tools", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    tools = {tool["name"]: tool for tool in json_lines(as_json.stdout)}
    assert tools.keys() == CATALOGUE.keys()
    scale = tools["redis_scale_memory"]
    assert (scale["target_kind"], scale["risk"]) == ("redis", str(CATALOGUE["redis_scale_memory"].risk))
    assert "maxmemory_mb" in scale["arguments"]["properties"]


def test_traffic_aims_at_the_inventorys_nginx_else_its_app(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    with running_stack(tmp_path / "shop", shop_resources()) as stack:
        edge, shop = stack.inventory.get("edge").connection.port, stack.inventory.get("shop").connection.port
        cli = Cli(tmp_path)
        cli.inventory = stack.inventory_path
        result = cli("traffic", "--rate", "10", "--duration", "1")
        assert result.returncode == 0, result.stderr
        assert f"to http://127.0.0.1:{edge} " in result.stderr
        assert "200:" in result.stdout

        listed = yaml.safe_load(stack.inventory_path.read_text())["resources"]
        without_edge = [resource for resource in listed if resource["kind"] != "nginx"]
        cli.inventory = tmp_path / "no-edge.yaml"
        cli.inventory.write_text(yaml.safe_dump({"version": 1, "resources": without_edge}))
        result = cli("traffic", "--rate", "10", "--duration", "1")
        assert result.returncode == 0, result.stderr
        assert f"to http://127.0.0.1:{shop} " in result.stderr


def test_traffic_to_a_down_target_says_so_in_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.inventory.write_text(yaml.safe_dump({"version": 1, "resources": shop_resources()}))  # never started
    edge = load_inventory(cli.inventory).get("edge").connection.port
    result = cli("traffic", "--duration", "1")
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"http://127.0.0.1:{edge} does not answer" in error
    assert "Traceback" not in result.stderr


def test_watch_off_a_terminal_logs_one_json_object_per_event(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "none") as watcher:
        log = tmp_path / "watch.log"
        wait_for(lambda: "watching" in log.read_text(), "the watcher to start")
        fill_redis_memory(stack.inventory.get("cache"))
        wait_for(lambda: stack.context().ledger.ids_with_status("resolved"), "a resolved incident")
        events = json_lines(stop(watcher, stack))
    assert all({"ts", "level", "message"} <= event.keys() for event in events), events
    assert all(event["ts"].endswith("Z") and event["level"] in ("info", "warning", "error") for event in events)
    [incident_id] = stack.context().ledger.ids_with_status("resolved")
    opened = [event for event in events if event["level"] == "warning" and event.get("resource") == "cache"]
    assert opened[0]["incident_id"] == incident_id and opened[0]["symptom"] == "redis_memory_pressure"
    nodes = {event["node"] for event in events if event.get("incident_id") == incident_id and "node" in event}
    assert {"detector", "planner", "executor", "verifier"} <= nodes
    assert events[-1]["message"] == "stopped"


def test_watch_on_a_terminal_logs_readable_lines(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        primary, secondary = pty.openpty()
        command = [
            sys.executable, "-m", "opsgraph", "watch", "--inventory", str(stack.inventory_path),
            "--state-dir", str(stack.state_dir), "--interval", "0.2",
        ]  # fmt: skip
        watcher = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
        os.close(secondary)
        seen: list[str] = []
        try:
            wait_for(lambda: "SIGTERM or Ctrl-C stops" in _read_some(primary, seen), "the watcher to start")
            watcher.send_signal(signal.SIGTERM)
            wait_for(lambda: "stopped" in _read_some(primary, seen), "the watcher to stop")
            assert watcher.wait(timeout=60) == 0
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
            os.close(primary)
    text = "".join(seen)
    assert "watching" in text and '"ts"' not in text


def _read_some(fd: int, seen: list[str]) -> str:
    """What a terminal has shown so far, reading whatever arrived (a closed terminal reads as nothing)."""
    if select.select([fd], [], [], 0.1)[0]:
        with contextlib.suppress(OSError):  # EIO: the watcher exited and closed its side
            seen.append(os.read(fd, 65536).decode(errors="replace"))
    return "".join(seen)


def test_approve_on_a_langgraph_server_that_does_not_answer_says_so_in_one_line(cli: Cli) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = cli("approve", "inc-unknown", "--server", nobody)
    assert result.returncode == 1
    assert f"error: the LangGraph server at {nobody} did not answer" in result.stderr
    assert "Traceback" not in result.stderr
