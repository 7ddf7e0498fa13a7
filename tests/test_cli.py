"""The `opsgraph` command line, run as a real subprocess against real local servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from outside_redis import outside_redis
from support import redis_resource

from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import load_inventory


class Cli:
    def __init__(self, folder: Path) -> None:
        self.inventory = folder / "opsgraph.yaml"
        self.state_dir = folder / "state"
        self.inventory.write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "opsgraph", *args]
        if args[0] not in ("incidents",):
            command += ["--inventory", str(self.inventory)]
        if args[0] != "scan":
            command += ["--state-dir", str(self.state_dir)]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)

    def json_lines(self, result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    inventory = load_inventory(runner.inventory)
    try:
        yield runner
    finally:
        LocalStack(runner.state_dir, inventory).down()


def test_demo_json_contract(cli: Cli) -> None:
    result = cli("demo", "redis-memory-pressure", "--approval", "none", "--json")
    assert result.returncode == 0, result.stderr
    [record] = cli.json_lines(result)
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
    assert "RESOLVED" in result.stdout and "MTTR" in result.stdout
    listing = cli("incidents")
    assert "resolved" in listing.stdout
    incident_id = listing.stdout.split()[0]
    shown = json.loads(cli("incidents", "show", incident_id).stdout)
    assert shown["approvals"][0]["decided_by"] == "frank"
    assert [row["phase"] for row in shown["actions"]] == ["intent", "result"]


def test_fix_without_an_answer_leaves_the_incident_paused(cli: Cli) -> None:
    cli("up")
    cli("inject", "redis-memory-pressure")
    result = cli("fix", "--json", stdin="")
    assert result.returncode == 0, result.stderr
    [record] = cli.json_lines(result)
    assert record["outcome"] == "awaiting_approval" and record["resolved"] is False
    assert "awaiting_approval" in cli("incidents").stdout
    # a second fix does not open a second incident for the same fault
    [again] = cli.json_lines(cli("fix", "--json", "--approval", "none"))
    assert again["outcome"] == "duplicate"


def test_scan_and_status(cli: Cli) -> None:
    cli("up")
    scan = cli("scan")
    assert "cache" in scan.stdout and "healthy" in scan.stdout
    assert "running" in cli("status").stdout
    cli("down")
    assert "stopped" in cli("status").stdout
    assert "failed" in cli("scan").stdout


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
