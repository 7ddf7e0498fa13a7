"""The external environment runs exactly the declared lifecycle commands, and refuses the rest.

A real Redis is started by hand here (its own config file, AOF persistence, its own
data directory), as a user has one. OpsGraph may stop and start it only through the
argv lists its inventory entry declares.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from outside_redis import OutsideRedis, outside_redis, port_open

from opsgraph.tools.binaries import find_binary
from opsgraph.tools.environments import lifecycle_for
from opsgraph.tools.environments.external import ExternalEnvironment, LifecycleFailed, LifecycleRefused
from opsgraph.tools.inventory import Inventory, load_inventory, parse_inventory
from opsgraph.tools.runner import run_tool
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(120)

EXAMPLE = Path(__file__).parents[2] / "examples" / "external-servers.yaml"


@pytest.fixture
def users_redis(tmp_path: Path) -> Iterator[OutsideRedis]:
    with outside_redis(tmp_path / "users") as server:
        server.client().set("order:1", "kept")
        yield server


def inventory_for(server: OutsideRedis, external: dict[str, Any]) -> Inventory:
    return parse_inventory(
        {
            "resources": [
                {
                    "name": "orders-cache",
                    "kind": "redis",
                    "environment": "external",
                    "connection": {"host": "127.0.0.1", "port": server.port},
                    "external": external,
                }
            ]
        }
    )


def test_the_worked_example_inventory_loads_and_renders_systemd_argv() -> None:
    inventory = load_inventory(EXAMPLE)
    cache = inventory.get("cache").external.lifecycle_commands()
    assert cache.restart == ["systemctl", "restart", "redis-server.service"]
    assert cache.status == ["systemctl", "is-active", "--quiet", "redis-server.service"]
    edge = inventory.get("edge").external.lifecycle_commands()
    assert edge.reload == ["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf", "-s", "reload"]
    sessions = inventory.get("sessions")
    assert sessions.external.lifecycle == "none" and not sessions.managed_by_opsgraph
    assert isinstance(lifecycle_for(sessions, inventory, Path("/nonexistent")), ExternalEnvironment)


def test_without_a_lifecycle_a_restart_is_refused_and_nothing_is_started(users_redis: OutsideRedis) -> None:
    inventory = inventory_for(users_redis, {})
    users_redis.sigkill()
    with pytest.raises(LifecycleRefused, match=r"not managed by OpsGraph .* declares no way to restart it"):
        ExternalEnvironment(inventory).restart("orders-cache")
    assert not port_open(users_redis.port)
    with pytest.raises(LifecycleRefused, match="lists no log files"):
        ExternalEnvironment(inventory).log_tail("orders-cache")


def test_a_running_server_with_only_a_start_command_is_not_restarted(users_redis: OutsideRedis) -> None:
    inventory = inventory_for(users_redis, {"lifecycle": "commands", "commands": {"start": users_redis.start_command}})
    pid = users_redis.pid()
    with pytest.raises(LifecycleRefused, match="declares no way to restart"):
        ExternalEnvironment(inventory).restart("orders-cache")
    assert users_redis.pid() == pid


def test_stop_then_start_restarts_the_same_server_with_its_data(users_redis: OutsideRedis) -> None:
    stop = [str(find_binary("redis-cli")), "-p", str(users_redis.port), "shutdown"]
    external = {
        "lifecycle": "commands",
        "commands": {"start": users_redis.start_command, "stop": stop},
        "paths": {"pid_file": str(users_redis.pid_file), "log_files": [str(users_redis.log_file)]},
    }
    inventory = inventory_for(users_redis, external)
    before = users_redis.pid()
    status = ExternalEnvironment(inventory).restart("orders-cache")
    assert status.running and status.pid not in (None, before)
    assert users_redis.client().get("order:1") == "kept"  # shutdown saved it; start loaded it
    assert any(
        "Ready to accept connections" in line for line in ExternalEnvironment(inventory).log_tail("orders-cache")
    )


def test_a_failing_command_reports_its_output_and_a_slow_one_its_timeout(
    users_redis: OutsideRedis, tmp_path: Path
) -> None:
    users_redis.sigkill()
    failing = [str(find_binary("redis-server")), str(tmp_path / "missing.conf")]
    inventory = inventory_for(users_redis, {"lifecycle": "commands", "commands": {"start": failing}})
    with pytest.raises(LifecycleFailed, match=r"start command .* failed \(exit status 1\): .*missing\.conf"):
        ExternalEnvironment(inventory).restart("orders-cache")
    sleep = shutil.which("sleep")
    assert sleep is not None
    slow = {"lifecycle": "commands", "commands": {"start": [sleep, "5"]}, "timeout_s": 0.3}
    with pytest.raises(LifecycleFailed, match=r"did not finish within 0\.3 s"):
        ExternalEnvironment(inventory_for(users_redis, slow)).restart("orders-cache")
    assert not port_open(users_redis.port)


def test_status_uses_the_declared_command(users_redis: OutsideRedis) -> None:
    false = shutil.which("false")
    assert false is not None
    external = {"lifecycle": "commands", "commands": {"start": users_redis.start_command, "status": [false]}}
    assert not ExternalEnvironment(inventory_for(users_redis, external)).status("orders-cache").running
    assert ExternalEnvironment(inventory_for(users_redis, {})).status("orders-cache").running


def test_a_saturated_redis_counts_as_up(users_redis: OutsideRedis) -> None:
    """At maxclients a new client is turned away — the server is up and must not be restarted."""
    with users_redis.client() as holder:  # the one client there is room for
        holder.config_set("maxclients", "1")
        with (
            pytest.raises(redis.ConnectionError, match="max number of clients reached"),
            users_redis.client() as one_more,
        ):
            one_more.ping()
        assert ExternalEnvironment(inventory_for(users_redis, {})).status("orders-cache").running
        holder.config_set("maxclients", "100")


def test_process_logs_and_stats_read_the_declared_paths(users_redis: OutsideRedis, tmp_path: Path) -> None:
    paths = {"pid_file": str(users_redis.pid_file), "log_files": [str(users_redis.log_file)]}
    inventory = inventory_for(users_redis, {"paths": paths})
    ctx = ToolContext(inventory=inventory, state_dir=tmp_path / "state")
    stats = run_tool("process_stats", {"resource": "orders-cache"}, ctx, 10)
    assert stats.ok and stats.output is not None
    assert stats.output["pid"] == users_redis.pid() and stats.output["running"] is True
    logs = run_tool("process_logs", {"resource": "orders-cache", "lines": 20}, ctx, 10)
    assert logs.ok and logs.output is not None and any("redis.log:" in line for line in logs.output["lines"])
    restart = run_tool("process_restart", {"resource": "orders-cache"}, ctx, 10)
    assert not restart.ok and users_redis.answers()  # only the kind's restart, through the declared lifecycle
    bare = ToolContext(inventory=inventory_for(users_redis, {}), state_dir=tmp_path / "state")
    missing = run_tool("process_stats", {"resource": "orders-cache"}, bare, 10)
    assert not missing.ok and "add external.paths.pid_file" in str(missing.error)
