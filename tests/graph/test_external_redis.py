"""A crashed Redis that OpsGraph did not start: restarted through the declared command with its data, or refused.

The server is a user's: its own redis.conf, data dir and AOF, started outside OpsGraph.
A restart must bring back *that* server with all its keys — never an empty one on its port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outside_redis import OutsideRedis, outside_redis, port_open
from support import fast_context

from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.redis_tools import forget_kept_clients

pytestmark = pytest.mark.timeout(120)

KEYS = {f"order:{n}": f"paid:{n * 7}" for n in range(500)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OutsideRedis]:
    with outside_redis(tmp_path / "user-redis") as running:
        with running.client() as client:
            client.mset(KEYS)
        yield running
    forget_kept_clients()


def _keys(server: OutsideRedis) -> dict[str, Any]:
    with server.client() as client:
        names = list(KEYS)
        return dict(zip(names, client.mget(names), strict=True))


def _context(tmp_path: Path, inventory: Path, **overrides: Any) -> Context:
    return fast_context(inventory, tmp_path / "state", **{"approval": "none", "verify_deadline_s": 30.0, **overrides})


def test_a_crash_is_restarted_by_the_declared_command_with_every_key(server: OutsideRedis, tmp_path: Path) -> None:
    inventory = server.write_inventory(
        tmp_path / "opsgraph.yaml", lifecycle="commands", commands={"start": server.start_command}
    )
    dead_pid = server.sigkill()

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, _context(tmp_path, inventory), "cache", "inc-ext-restart")

    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["symptom"] == "redis_unreachable"
    assert report["outcome"] == "resolved", report["outcome_detail"]
    [action] = done.values["actions"]
    assert (action["tool"], action["status"]) == ("redis_restart", "ok"), action["error"]
    # The declared command started the user's own server: its pid file names the new process.
    assert action["output"]["pid"] == server.pid() != dead_pid
    assert server.log_file.read_text().count("Server initialized") == 2
    assert _keys(server) == KEYS  # the same data, every key, reloaded from its AOF


def test_without_a_lifecycle_the_restart_is_refused_and_nothing_takes_the_port(
    server: OutsideRedis, tmp_path: Path
) -> None:
    inventory = server.write_inventory(tmp_path / "opsgraph.yaml")  # external: paths only, lifecycle none
    server.sigkill()

    with incident_graph(tmp_path / "state") as graph:
        context = _context(tmp_path, inventory, verify_deadline_s=1.0)
        done = start_incident(graph, context, "cache", "inc-ext-refused")

    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["outcome"] == "escalated", report["outcome_detail"]
    assert report["actions"], "the runbook's restart step should have been tried and refused"
    for action in report["actions"]:
        assert (action["tool"], action["status"]) == ("redis_restart", "error")
        assert "not managed by OpsGraph" in action["error"]
        assert "declares no way to restart" in action["error"]
    assert not port_open(server.port), "something was started on the user's port"

    server.start()  # the user brings back their own server: the data was never touched
    assert _keys(server) == KEYS
