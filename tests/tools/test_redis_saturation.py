"""A Redis at maxclients is full, not down: measured through OpsGraph's kept connection and freed without a restart.

The server is started outside OpsGraph. A "leaky" client opens connections and leaves
them idle until Redis refuses more; a "good" client keeps working all along. The fix
must disconnect the leaky client's sockets, spare the good one, and keep the server
(same run_id and pid).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from outside_redis import OutsideRedis, outside_redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from support import fast_context, wait_for

from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.environments.liveness import REDIS_FULL
from opsgraph.tools.inventory import Resource, load_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.redis_tools import KEPT_CLIENT_NAME, MIN_IDLE_FLOOR_S, forget_kept_clients, kept_client
from opsgraph.tools.runner import run_tool
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(120)

MAXCLIENTS = 20
LEAKY = "leaky-worker"


def _resp(*parts: str) -> bytes:
    """A command in the Redis protocol, written by hand: the leaky client is a bare socket."""
    return (f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)).encode()


def _open_named(port: int, name: str) -> socket.socket | None:
    """A new connection that names itself and then sits idle; None when Redis refuses it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(_resp("CLIENT", "SETNAME", name))
        reply = sock.recv(256)
    except ConnectionResetError:  # refused and closed before our command arrived
        reply = b""
    if reply == b"+OK\r\n":
        return sock
    sock.close()
    assert reply in (b"", f"-ERR {REDIS_FULL}\r\n".encode()), reply
    return None


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether Redis disconnected this socket: a PING then reads end-of-file (or a reset)."""
    try:
        sock.sendall(_resp("PING"))
        return sock.recv(64) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


@dataclass
class Clients:
    """Connections the test opens (as the users' applications would); all closed at teardown."""

    server: OutsideRedis
    leaked: list[socket.socket] = field(default_factory=list)
    good: redis.Redis | None = None
    good_id: int | None = None
    good_errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _worker: threading.Thread | None = None

    def leak_until_refused(self) -> None:
        """Open idle connections until Redis refuses one ("max number of clients reached")."""
        while (sock := _open_named(self.server.port, LEAKY)) is not None:
            self.leaked.append(sock)
            assert len(self.leaked) <= MAXCLIENTS, "Redis never refused a connection"

    def start_good_client(self) -> None:
        """A busy application: a command every 0.1 s on one connection, with no retry that would hide a kill."""
        self.good = redis.Redis(
            port=self.server.port, client_name="shop-api", single_connection_client=True, retry=Retry(NoBackoff(), 0)
        )
        self.good_id = int(self.good.client_id())

        def work(client: redis.Redis) -> None:
            while not self._stop.wait(0.1):
                try:
                    client.incr("shop:requests")
                except redis.RedisError as error:
                    self.good_errors.append(repr(error))

        self._worker = threading.Thread(target=work, args=(self.good,), daemon=True)
        self._worker.start()

    def stop_good_client(self) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=10)

    def close(self) -> None:
        self.stop_good_client()
        if self.good is not None:
            self.good.close()
        for sock in self.leaked:
            sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OutsideRedis]:
    forget_kept_clients()  # this process starts with no way into the server
    with outside_redis(tmp_path / "user-redis", maxclients=MAXCLIENTS) as running:
        with running.client() as client:
            client.mset({f"session:{n}": "x" for n in range(50)})
        yield running
    forget_kept_clients()


@pytest.fixture
def clients(server: OutsideRedis) -> Iterator[Clients]:
    opened = Clients(server)
    try:
        yield opened
    finally:
        opened.close()


def _inventory(server: OutsideRedis, tmp_path: Path) -> tuple[Path, Resource]:
    path = server.write_inventory(tmp_path / "opsgraph.yaml")
    return path, load_inventory(path).get("cache")


def _context(tmp_path: Path, inventory: Path) -> Context:
    return fast_context(inventory, tmp_path / "state", approval="none", verify_deadline_s=15.0)


def _server_identity(resource: Resource) -> tuple[str, int]:
    facts = kept_client(resource).info("server")
    return facts["run_id"], facts["process_id"]


def test_leaked_clients_are_disconnected_without_a_restart(
    server: OutsideRedis, clients: Clients, tmp_path: Path
) -> None:
    inventory, cache = _inventory(server, tmp_path)
    assert probe(cache).health is Health.HEALTHY  # OpsGraph's kept connection is opened here
    identity = _server_identity(cache)
    clients.start_good_client()
    clients.leak_until_refused()

    full = probe(cache)
    assert full.health is Health.FAILED
    assert full.symptom == "redis_clients_exhausted", full.reasons
    assert full.metrics["connected_clients"] == MAXCLIENTS
    assert "refuses new connections" in full.reasons[0]

    def leaked_long_enough() -> bool:
        idle = [int(c["idle"]) for c in kept_client(cache).client_list() if c["name"] == LEAKY]
        return len(idle) == len(clients.leaked) and min(idle) >= MIN_IDLE_FLOOR_S

    wait_for(leaked_long_enough, f"the leaked connections to be idle {MIN_IDLE_FLOOR_S} s", timeout_s=60)

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, _context(tmp_path, inventory), "cache", "inc-saturated")

    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["symptom"] == "redis_clients_exhausted"
    assert report["outcome"] == "resolved", report["outcome_detail"]
    tools = [action["tool"] for action in report["actions"]]
    assert tools == ["redis_kill_idle_clients"], report["actions"]
    assert "redis_restart" not in tools
    [kill] = done.values["actions"]
    assert kill["output"]["killed"] == len(clients.leaked)
    assert {client["name"] for client in kill["output"]["clients"]} == {LEAKY}

    assert all(_closed_by_server(connection) for connection in clients.leaked)
    clients.stop_good_client()
    assert clients.good_errors == []  # the busy application never noticed
    assert clients.good is not None and clients.good.client_id() == clients.good_id  # on its first connection
    names = {c["name"] for c in kept_client(cache).client_list()}
    assert {KEPT_CLIENT_NAME, "shop-api"} <= names and LEAKY not in names
    assert _server_identity(cache) == identity  # the same server process: never restarted


def test_a_full_server_without_a_kept_connection_is_saturated_not_down(
    server: OutsideRedis, clients: Clients, tmp_path: Path
) -> None:
    inventory, cache = _inventory(server, tmp_path)
    clients.leak_until_refused()  # before OpsGraph ever connected
    pid = server.pid()

    snapshot = probe(cache)
    assert snapshot.health is Health.FAILED
    assert snapshot.symptom == "redis_clients_exhausted"  # never redis_unreachable
    assert "OpsGraph holds no connection" in snapshot.reasons[0]

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, _context(tmp_path, inventory), "cache", "inc-full-blind")

    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["symptom"] == "redis_clients_exhausted"
    assert report["outcome"] == "escalated"
    assert report["actions"] == []  # in particular no restart
    assert "holds no connection" in report["outcome_detail"]
    assert "do not restart" in report["outcome_detail"]
    assert server.pid() == pid and all(not _closed_by_server(c) for c in clients.leaked[:3])


def test_blocked_workers_are_spared_and_maxclients_is_raised_at_runtime(
    server: OutsideRedis, clients: Clients, tmp_path: Path
) -> None:
    """Workers waiting in BLPOP look idle but do their job: the fix is room, not disconnections."""
    inventory, cache = _inventory(server, tmp_path)
    assert probe(cache).health is Health.HEALTHY
    identity = _server_identity(cache)
    clients.leak_until_refused()
    for worker in clients.leaked:
        worker.sendall(_resp("BLPOP", "jobs", "0"))  # blocked until a job arrives
    wait_for(lambda: kept_client(cache).info("clients")["blocked_clients"] == len(clients.leaked), "workers to block")
    assert probe(cache).symptom == "redis_clients_exhausted"

    with incident_graph(tmp_path / "state") as graph:
        done = start_incident(graph, _context(tmp_path, inventory), "cache", "inc-blocked")

    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["outcome"] == "resolved", report["outcome_detail"]
    [scale] = done.values["actions"]
    assert scale["tool"] == "redis_scale_clients"
    assert scale["output"]["previous_maxclients"] == MAXCLIENTS
    assert scale["output"]["maxclients"] == scale["args"]["maxclients"] > MAXCLIENTS  # in force, read back
    assert kept_client(cache).config_get("maxclients")["maxclients"] == str(scale["output"]["maxclients"])
    workers = [c for c in kept_client(cache).client_list() if c["name"] == LEAKY]
    assert len(workers) == len(clients.leaked) and all("b" in c["flags"] for c in workers)
    assert _server_identity(cache) == identity

    tools = ToolContext(inventory=load_inventory(inventory), state_dir=tmp_path / "state")
    connected = int(kept_client(cache).info("clients")["connected_clients"])
    refused = run_tool("redis_scale_clients", {"resource": "cache", "maxclients": connected}, tools, 5)
    assert not refused.ok and "at or below the" in str(refused.error)
    spec = CATALOGUE["redis_scale_clients"]
    assert spec.check_limits is not None
    ceiling = spec.check_limits(spec.args_model(resource="cache", maxclients=5000), cache)
    assert ceiling is not None and "policy ceiling of 1000" in ceiling
