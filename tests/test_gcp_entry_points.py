"""GCP resources through the entry points: `opsgraph scan`, the chat's health view and `opsgraph demo --gcp-emulator`.

The resources are instances of the local GCP emulator, reached through Google's real
client libraries (tests/gcp_support.py); the demo starts its own emulator, as a user's
`opsgraph demo … --gcp-emulator` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gcp_support import PROJECT, ZONE, GcpWorld, gcp_world
from typer.testing import CliRunner

from opsgraph.chat import render
from opsgraph.chat.service import ChatService
from opsgraph.cli import app
from opsgraph.graph.context import Context

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpWorld]:
    with gcp_world(tmp_path_factory.mktemp("gcp")) as started:
        yield started


def test_scan_lists_every_gcp_kind_with_where_it_lives(world: GcpWorld, tmp_path: Path) -> None:
    inventory = world.write_inventory(tmp_path / "opsgraph.yaml")
    table = runner.invoke(app, ["scan", "--inventory", str(inventory)])
    assert table.exit_code == 0, table.output
    assert "gcp_compute" in table.output and "gcp_redis" in table.output and "gcp_sql" in table.output
    lines = runner.invoke(app, ["scan", "--inventory", str(inventory), "--json"])
    rows = {row["resource"]: row for row in map(json.loads, lines.output.splitlines())}
    assert {rows[name]["kind"] for name in ("web-1", "cache", "orders-db")} == {"gcp_compute", "gcp_redis", "gcp_sql"}
    assert {row["health"] for row in rows.values()} == {"healthy"}
    assert rows["cache"]["metrics"]["tier"] == "STANDARD_HA" and rows["web-1"]["metrics"]["status"] == "RUNNING"
    assert rows["web-1"]["run_by"] == f"GCP ({PROJECT}/{ZONE}/web-1)"


def test_the_chat_shows_gcp_resources_like_any_other(world: GcpWorld, tmp_path: Path) -> None:
    inventory = world.write_inventory(tmp_path / "opsgraph.yaml")
    chat = ChatService(Context(inventory_path=str(inventory), state_dir=str(tmp_path / "state")))
    world.emulator.set_guest(ZONE, "web-2", memory_used_pct=97.0)
    try:
        shown = render.health(chat.health())
    finally:
        world.emulator.set_guest(ZONE, "web-2", memory_used_pct=35.0)
    assert "**orders-db** (gcp_sql): healthy" in shown and "**cache** (gcp_redis): healthy" in shown
    assert "**web-2** (gcp_compute): failed" in shown and "memory" in shown


def test_demo_on_the_gcp_emulator_fixes_the_fault_after_the_operator_approves(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["demo", "gcp-redis-memory-pressure", "--gcp-emulator", "--state-dir", str(tmp_path / "state"), "--json"],
        input="y\n",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [record["outcome"] for record in records] == ["resolved"], records
    assert "Approval needed" in result.stderr and "gcp_redis_scale_memory" in result.stderr


def test_demo_with_the_gcp_emulator_refuses_a_scenario_that_is_not_gcp(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "redis-memory-pressure", "--gcp-emulator", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a GCP scenario" in result.stderr and "gcp-sql-connection-overload" in result.stderr
