"""The local environment against real redis-server, PostgreSQL and nginx daemons.

One stack is started per module (initdb dominates the cost) and always torn down
by the fixture finalizer, so no server survives a failing test.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from outside_redis import outside_redis, port_open
from support import free_port

from opsgraph.tools import binaries
from opsgraph.tools.binaries import MissingBinaryError, find_binary
from opsgraph.tools.environments.local import LocalStack, LocalStackError
from opsgraph.tools.inventory import Inventory, parse_inventory

pytestmark = pytest.mark.timeout(60)

MAXMEMORY_MB = 48
MAX_CONNECTIONS = 20


def make_inventory(cache: int, db: int, web: int) -> Inventory:
    return parse_inventory(
        {
            "resources": [
                {
                    "name": "cache",
                    "kind": "redis",
                    "connection": {"port": cache},
                    "local": {"maxmemory_mb": MAXMEMORY_MB},
                },
                {
                    "name": "db",
                    "kind": "postgres",
                    "connection": {"port": db, "user": "app", "database": "appdb"},
                    "local": {"max_connections": MAX_CONNECTIONS},
                },
                {"name": "web", "kind": "nginx", "connection": {"port": web}},
            ]
        }
    )


def port_of(inventory: Inventory, name: str) -> int:
    return inventory.get(name).connection.port


def nginx_status(port: int) -> str:
    url = f"http://127.0.0.1:{port}/nginx_status"
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir = tmp_path_factory.mktemp("state")
    local = LocalStack(state_dir, make_inventory(free_port(), free_port(), free_port()))
    try:
        local.up()
        yield local
    finally:
        local.down()


def test_up_starts_servers_that_answer(stack: LocalStack) -> None:
    statuses = {status.name: status for status in stack.status()}
    assert set(statuses) == {"cache", "db", "web"}
    assert all(status.running and status.pid for status in statuses.values())

    assert redis.Redis(port=port_of(stack.inventory, "cache")).ping()
    with psycopg.connect(host="127.0.0.1", port=port_of(stack.inventory, "db"), user="app", dbname="appdb") as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
        assert row == ("app", "appdb")
    assert "Active connections" in nginx_status(port_of(stack.inventory, "web"))


def test_settings_come_from_the_inventory(stack: LocalStack) -> None:
    client = redis.Redis(port=port_of(stack.inventory, "cache"))
    config = client.config_get("maxmemory*")
    assert config["maxmemory"] == str(MAXMEMORY_MB * 1024 * 1024)
    assert config["maxmemory-policy"] == "noeviction"

    port = port_of(stack.inventory, "db")
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres") as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        assert row == (str(MAX_CONNECTIONS),)


def test_second_up_is_a_noop(stack: LocalStack) -> None:
    before = {status.name: status.pid for status in stack.status()}
    messages: list[str] = []

    after = {status.name: status.pid for status in stack.up(messages.append)}

    assert after == before
    assert all("already running" in message for message in messages), messages


def test_status_and_logs_from_a_new_process(stack: LocalStack) -> None:
    # A new LocalStack knows only the state folder, like `opsgraph status` would.
    fresh = LocalStack(stack.state_dir, stack.inventory)

    assert fresh.status() == stack.status()
    assert all(status.running for status in fresh.status())
    assert any("ready to accept connections" in line for line in fresh.log_tail("db"))
    assert len(fresh.log_tail("cache", lines=3)) == 3


def test_restart_gives_a_new_redis(stack: LocalStack) -> None:
    port = port_of(stack.inventory, "cache")
    redis.Redis(port=port).set("key", "value")
    old_pid = next(s.pid for s in stack.status() if s.name == "cache")

    restarted = stack.restart("cache")

    assert restarted.running
    assert restarted.pid not in (None, old_pid)
    client = redis.Redis(port=port)
    assert client.ping()
    assert client.get("key") is None  # no persistence: a restart starts empty


def test_down_stops_everything_and_up_starts_again(stack: LocalStack) -> None:
    stack.down()

    assert not any(status.running or status.pid for status in stack.status())
    for name in ("cache", "db", "web"):
        assert not port_open(port_of(stack.inventory, name)), name
    stack.down()  # nothing runs: still fine

    # The data folder survives: the database created by the first up is still there.
    assert all(status.running for status in stack.up())
    with psycopg.connect(host="127.0.0.1", port=port_of(stack.inventory, "db"), user="app", dbname="appdb"):
        pass


def test_missing_binaries_name_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(binaries, "POSTGRESQL_ROOT", empty)
    monkeypatch.setattr(binaries, "SBIN_DIRS", ())

    with pytest.raises(MissingBinaryError, match="apt-get install redis-server"):
        find_binary("redis-server")
    with pytest.raises(MissingBinaryError, match="apt-get install postgresql"):
        find_binary("initdb")
    with pytest.raises(MissingBinaryError, match="apt-get install nginx-light"):
        find_binary("nginx")

    local = LocalStack(tmp_path / "state", make_inventory(free_port(), free_port(), free_port()))
    with pytest.raises(MissingBinaryError, match="apt-get install") as error:
        local.up()
    assert {"redis-server", "pg_ctl", "nginx"} <= set(error.value.names)
    assert not any(status.pid for status in local.status())


def test_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    inventory = make_inventory(free_port(), free_port(), free_port())
    local = LocalStack(tmp_path / "state", inventory)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port_of(inventory, "web")))
        squatter.listen()
        try:
            with pytest.raises(LocalStackError) as error:
                local.up()
        finally:
            local.down()

    message = str(error.value)
    assert "web" in message
    assert str(port_of(inventory, "web")) in message
    assert "inventory" in message
    assert not port_open(port_of(inventory, "cache"))  # redis was not started either


def test_restart_refuses_a_server_opsgraph_did_not_start(tmp_path: Path) -> None:
    """A user's Redis on the port of a `local` resource: OpsGraph never started it, so it is not OpsGraph's."""
    with outside_redis(tmp_path / "users") as users:
        users.client().set("order:1", "theirs")
        inventory = parse_inventory(
            {"resources": [{"name": "cache", "kind": "redis", "connection": {"port": users.port}}]}
        )
        stack = LocalStack(tmp_path / "state", inventory)
        with pytest.raises(LocalStackError, match=r"was not started by OpsGraph .* empty replacement"):
            stack.restart("cache")
        assert users.client().get("order:1") == "theirs" and users.answers()
        users.sigkill()  # and once it has crashed, nothing takes its place either
        with pytest.raises(LocalStackError, match="was not started by OpsGraph"):
            stack.restart("cache")
        assert not port_open(users.port)


def test_restart_never_initialises_a_missing_postgres_data_directory(tmp_path: Path) -> None:
    """A record without its data (deleted, or another machine's): restarting would mean a fresh initdb."""
    port = free_port()
    inventory = parse_inventory({"resources": [{"name": "db", "kind": "postgres", "connection": {"port": port}}]})
    folder = tmp_path / "state" / "local" / "db"
    folder.mkdir(parents=True)
    (folder / "resource.json").write_text(inventory.get("db").model_dump_json())
    with pytest.raises(LocalStackError, match="its data is not there"):
        LocalStack(tmp_path / "state", inventory).restart("db")
    assert not (folder / "data").exists() and not port_open(port)
