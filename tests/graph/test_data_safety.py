"""A step that leaves a server up but its data changed fails the incident as a data-safety failure.

The Redis here is started outside OpsGraph (its own config, AOF persistence, its own
data directory, 300 keys). Its inventory entry declares a start command that brings up
*a* Redis on the same port — but with another, empty directory: the kind of mistake a
hand-written lifecycle command makes. The probe alone would call the result healthy;
the data check around the restart must not.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from outside_redis import OutsideRedis, outside_redis, port_open
from support import fast_context, wait_for

from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.mcp_server import _handler
from opsgraph.tools.binaries import find_binary
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.data_safety import DataFingerprint, unexpected_changes
from opsgraph.tools.inventory import ResourceKind, load_inventory
from opsgraph.tools.runner import run_tool
from opsgraph.tools.spec import ToolContext, ToolError

pytestmark = pytest.mark.timeout(120)

KEYS = 300


@pytest.fixture
def users_redis(tmp_path: Path) -> Iterator[OutsideRedis]:
    """A persistent Redis someone started by hand, with keys; stopped (whatever runs on its port) afterwards."""
    with outside_redis(tmp_path / "users") as server:
        for index in range(KEYS):
            server.client().set(f"order:{index}", "x" * 100)
        yield server


def write_inventory(folder: Path, users_redis: OutsideRedis, start: list[str]) -> Path:
    """The user's Redis as an external resource whose declared start command is `start`."""
    inventory = folder / "opsgraph.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "resources": [
                    {
                        "name": "orders-cache",
                        "kind": "redis",
                        "environment": "external",
                        "connection": {"host": "127.0.0.1", "port": users_redis.port},
                        "external": {
                            "lifecycle": "commands",
                            "commands": {"start": start},
                            "timeout_s": 20,
                            "paths": {
                                "config_file": str(users_redis.config_file),
                                "data_dir": str(users_redis.data_dir),
                                "log_files": [str(users_redis.log_file)],
                            },
                        },
                    }
                ],
            }
        )
    )
    return inventory


def wrong_start(users_redis: OutsideRedis, empty: Path) -> list[str]:
    """The mistake: a start command for the same port that points at another directory."""
    return [str(find_binary("redis-server")), "--port", str(users_redis.port), "--bind", "127.0.0.1",
            "--daemonize", "yes", "--dir", str(empty), "--appendonly", "yes", "--save", ""]  # fmt: skip


def test_a_restart_that_brings_back_an_empty_server_fails_as_data_safety(
    users_redis: OutsideRedis, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    inventory = write_inventory(tmp_path, users_redis, wrong_start(users_redis, empty))
    users_redis.sigkill()
    context = fast_context(inventory, tmp_path / "state", approval="none", verify_deadline_s=5.0)
    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, context, "orders-cache", "inc-data")
    report = done.report
    assert report is not None
    assert report["outcome"] == "data_safety_failure", report["outcome_detail"]
    assert not report["resolved"]
    assert [(a["tool"], a["status"], a["data_survived"]) for a in report["actions"]] == [("redis_restart", "ok", False)]
    assert any(f"dir changed from '{users_redis.data_dir}' to '{empty}'" in line for line in report["data_safety"])
    assert any("no keys" in line for line in report["data_safety"])
    assert "DATA SAFETY FAILURE" in report["outcome_detail"]
    # The ledger's result row carries both fingerprints, so the evidence outlives the checkpoint.
    [result] = [row for row in context.ledger.actions("inc-data") if row["phase"] == "result"]
    assert result["status"] == "ok"
    # The user's data is still where it was: OpsGraph wrote nothing there.
    assert any(path.stat().st_size > 200 for path in users_redis.data_dir.rglob("*.aof"))
    closed = context.ledger.incident("inc-data")
    assert closed is not None and closed["status"] == "data_safety_failure"

    # The resource is held: the next fault on it is left to a human, until one releases it.
    users_redis.stop()
    wait_for(lambda: not port_open(users_redis.port), "the wrong server to stop")
    with incident_graph(tmp_path / "state") as graph:
        held = start_incident(graph, context, "orders-cache", "inc-held")
    assert held.values["outcome"] == "held" and "opsgraph incidents release inc-data" in held.values["outcome_detail"]
    assert context.ledger.actions("inc-held") == []
    release = [sys.executable, "-m", "opsgraph", "incidents", "release", "inc-data", "--by", "alice",
               "--state-dir", str(tmp_path / "state")]  # fmt: skip
    released = subprocess.run(release, capture_output=True, text=True, timeout=60, check=False)
    assert released.returncode == 0 and "released by alice" in released.stdout, released.stderr
    record = context.ledger.incident("inc-data")
    assert record is not None and record["status"] == "data_safety_released"
    assert record["report"]["released"]["by"] == "alice" and record["report"]["outcome"] == "data_safety_failure"
    again = subprocess.run(release, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "not a held data-safety failure" in again.stderr
    with incident_graph(tmp_path / "state") as graph:
        acted = start_incident(graph, context, "orders-cache", "inc-after-release")
    assert acted.report is not None and [a["tool"] for a in acted.report["actions"]] == ["redis_restart"]


def test_every_entry_point_gets_the_check_mcp_included(users_redis: OutsideRedis, tmp_path: Path) -> None:
    """The runner brackets the step whoever calls it; over MCP a data-safety failure is an error result."""
    empty = tmp_path / "empty"
    empty.mkdir()
    inventory = load_inventory(write_inventory(tmp_path, users_redis, wrong_start(users_redis, empty)))
    ctx = ToolContext(inventory=inventory, state_dir=tmp_path / "state")
    users_redis.sigkill()
    call = _handler(CATALOGUE["redis_restart"], ctx, timeout_s=30)
    with pytest.raises(ToolError, match=r"DATA SAFETY FAILURE after redis_restart: dir changed"):
        call(resource="orders-cache")
    # The same step straight through the runner (the executor's path): it ran, the data did not survive.
    users_redis.stop()
    wait_for(lambda: not port_open(users_redis.port), "the wrong server to stop")
    outcome = run_tool("redis_restart", {"resource": "orders-cache"}, ctx, 30)
    assert outcome.ok and outcome.data_check is not None and not outcome.data_check.survived
    assert outcome.data_check.before.source == "disk" and outcome.data_check.after.source == "live"


def _print(source: str, **facts: Any) -> DataFingerprint:
    return DataFingerprint(source=source, facts=facts, taken_at=0.0)


@pytest.mark.parametrize(
    ("kind", "before", "after", "may_change", "expected"),
    [
        # A Redis without persistence loses its keys on a restart by design.
        (ResourceKind.REDIS, _print("live", keys=50, persistent=False, dir="/d"), _print("live", keys=0, dir="/d"),
         frozenset(), []),
        (ResourceKind.REDIS, _print("live", keys=50, persistent=True, dir="/d"), _print("live", keys=0, dir="/d"),
         frozenset(), ["keys fell from 50 to 0 on a server with persistence"]),
        (ResourceKind.REDIS, _print("live", keys=50, persistent=True), _print("live", keys=0),
         frozenset({"keys"}), []),
        (ResourceKind.POSTGRES, _print("disk", system_identifier="1", data_directory="/pg"),
         _print("live", system_identifier="2", data_directory="/pg", tables=[]), frozenset(),
         ["system_identifier changed from '1' to '2'",
          "a different PostgreSQL cluster answers: the data was replaced"]),
        (ResourceKind.POSTGRES, _print("live", databases=["shop"], tables=["public.orders", "public.users"]),
         _print("live", databases=["shop"], tables=["public.users"]), frozenset(), ["tables gone: public.orders"]),
        (ResourceKind.NGINX, _print("disk", config_sha256="a"), _print("disk", config_sha256="b"), frozenset(),
         ["config_sha256 changed from 'a' to 'b'"]),
        (ResourceKind.NGINX, _print("disk", config_sha256="a"), _print("disk", config_sha256="b"),
         frozenset({"config_sha256"}), []),
    ],
)  # fmt: skip
def test_unexpected_changes(
    kind: ResourceKind,
    before: DataFingerprint,
    after: DataFingerprint,
    may_change: frozenset[str],
    expected: list[str],
) -> None:
    assert unexpected_changes(kind, before, after, may_change) == expected
