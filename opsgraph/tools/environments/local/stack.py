"""LocalStack: starts, probes and stops the inventory's local servers, one caller at a time.

It records what it started in the state folder so that a later process can stop it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from opsgraph.tools.atomic_file import write_atomic
from opsgraph.tools.binaries import find_binaries
from opsgraph.tools.environments.local.app_server import SampleAppServer
from opsgraph.tools.environments.local.nginx_server import NginxServer
from opsgraph.tools.environments.local.postgres_server import PostgresServer
from opsgraph.tools.environments.local.process import (
    LOOPBACK,
    LocalStackError,
    ProcessStatus,
    Server,
    is_alive,
    log_excerpt,
    port_in_use,
    read_pid,
    read_record,
    tail_lines,
)
from opsgraph.tools.environments.local.redis_server import RedisServer
from opsgraph.tools.inventory import Environment, Inventory, Resource, ResourceKind

Progress = Callable[[str], None]

_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
_RECORD = "resource.json"
_POLL_S = 0.05


def _ignore(_: str) -> None:
    """Default progress callback."""


_KINDS: dict[ResourceKind, type[Server]] = {
    ResourceKind.REDIS: RedisServer,
    ResourceKind.POSTGRES: PostgresServer,
    ResourceKind.HTTP: SampleAppServer,
    ResourceKind.NGINX: NginxServer,
}
# Start order: what others depend on first (the app needs its stores, the proxy its app).
_START_ORDER = list(_KINDS)


class LocalStack:
    """Starts, inspects and stops the inventory's ``environment: local`` resources."""

    def __init__(self, state_dir: Path, inventory: Inventory, *, timeout: float = 30.0) -> None:
        # Absolute: daemons change directory, so a relative log or pid path would break.
        self.state_dir = state_dir.resolve()
        self.inventory = inventory
        self.timeout = timeout  # per server, for each of start and stop
        self._root = self.state_dir / "local"

    # ---- public API

    def up(self, progress: Progress | None = None) -> list[ProcessStatus]:
        """Start every local resource that is not running and wait until each answers.

        Idempotent: running servers are left alone. Binaries and ports are all
        checked before anything starts, so a setup problem starts nothing.
        """
        say = progress or _ignore
        with self._locked():
            servers = [self._server(resource) for resource in self._resources()]
            self._preflight([server for server in servers if server.pid() is None])
            for server in servers:
                self._ensure_running(server, say)
            return [server.status() for server in servers]

    def down(self, progress: Progress | None = None) -> None:
        """Stop every server this state folder started, including ones since removed
        from the inventory, and wait until they have exited. Safe when nothing runs."""
        say = progress or _ignore
        with self._locked():
            started, unreadable = self._started_servers()
            for server in sorted(started, key=lambda s: -_START_ORDER.index(s.resource.kind)):
                self._stop(server, say)
        if unreadable:  # the others are stopped: only these are left for a human
            raise LocalStackError("; ".join(str(error) for error in unreadable))

    def status(self) -> list[ProcessStatus]:
        """Status of each local resource, plus any still-running server the inventory
        no longer lists (``down`` would stop it).

        A resource whose record is unreadable is probed with the inventory's settings and
        carries the problem: one torn file must not hide the rest of the stack.
        """
        statuses = [self._status_of(resource) for resource in self._resources()]
        listed = {status.name for status in statuses}
        started, _ = self._started_servers()
        statuses += [server.status() for server in started if server.name not in listed and server.pid() is not None]
        return statuses

    def restart(self, resource_name: str) -> ProcessStatus:
        """Stop then start one server with the current inventory settings.

        Only a server this state folder created: without its record and its data here,
        starting one would put a new, empty server in the place of someone else's
        (`up` is the one command that creates servers). Redis keeps nothing across a
        restart (no persistence): that is intended.
        """
        resource = self._local_resource(resource_name)
        with self._locked():
            running = self._server(resource)
            self._refuse_unless_ours(running)
            self._stop(running, _ignore)
            server = self._fresh_server(resource)
            self._preflight([server])
            self._ensure_running(server, _ignore)
            return server.status()

    def log_tail(self, resource_name: str, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of the server's log (empty if it never started)."""
        return tail_lines(self._server(self._local_resource(resource_name)).log_path, lines)

    # ---- resources and their servers

    def _resources(self) -> list[Resource]:
        local = [r for r in self.inventory.resources if r.environment is Environment.LOCAL]
        return sorted(local, key=lambda r: _START_ORDER.index(r.kind))

    def _local_resource(self, name: str) -> Resource:
        resource = self.inventory.get(name)  # KeyError names the missing resource
        if resource.environment is not Environment.LOCAL:
            raise LocalStackError(f"resource {name!r} runs in the {resource.environment} environment, not local")
        return resource

    def _folder(self, name: str) -> Path:
        return self._root / name

    def _fresh_server(self, resource: Resource) -> Server:
        return _KINDS[resource.kind](resource, self._folder(resource.name), self.timeout, self.inventory)

    def _recorded(self, name: str) -> Resource | None:
        """The inventory entry a server was last started with; None if it has no record.

        An unreadable record is a LocalStackError naming the file: OpsGraph no longer
        knows how that server was started, so it neither guesses nor restarts it.
        """
        path = self._folder(name) / _RECORD
        return read_record(
            path,
            Resource,
            f"OpsGraph cannot tell how {name!r} was started: stop that server by hand if it runs "
            f"(pid files in {path.parent}), delete {path}, then run `opsgraph up`",
        )

    def _server(self, resource: Resource) -> Server:
        """The server for ``resource`` as it runs now: its recorded settings if it was
        started with different ones (so we probe and stop the right port)."""
        recorded = self._recorded(resource.name)
        if recorded is not None and recorded != resource:
            running = self._fresh_server(recorded)
            if running.pid() is not None:
                return running
        return self._fresh_server(resource)

    def _status_of(self, resource: Resource) -> ProcessStatus:
        try:
            return self._server(resource).status()
        except LocalStackError as error:  # only the record can fail here: probe what the inventory says
            return self._fresh_server(resource).status().model_copy(update={"problem": str(error)})

    def _started_servers(self) -> tuple[list[Server], list[LocalStackError]]:
        """Every server that has a record in the state folder (inventory or not), and the
        records that cannot be read (each error names its file)."""
        if not self._root.is_dir():
            return [], []
        servers, unreadable = [], []
        for folder in sorted(self._root.iterdir()):
            if not folder.is_dir():
                continue
            try:
                recorded = self._recorded(folder.name)
            except LocalStackError as error:
                unreadable.append(error)
                continue
            if recorded is not None:
                servers.append(self._fresh_server(recorded))
        return servers, unreadable

    def _refuse_unless_ours(self, server: Server) -> None:
        """Refuse to restart what OpsGraph did not create: no record, or no data of its own here."""
        if self._recorded(server.name) is None or not server.data_exists():
            raise LocalStackError(
                f"{server.label} was not started by OpsGraph from {self._folder(server.name)} (no record of it, "
                "or its data is not there), so OpsGraph will not start a new server in its place: that would be an "
                "empty replacement. If this server is yours, describe it as `environment: external` with the "
                "commands that restart it; if it is OpsGraph's, start it with `opsgraph up`"
            )

    # ---- lifecycle steps

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down/restart across processes (the CLI and the agent may race)."""
        self._root.mkdir(parents=True, exist_ok=True)
        with (self._root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _preflight(self, to_start: list[Server]) -> None:
        """Fail before starting anything: missing binaries, non-loopback hosts, busy ports."""
        find_binaries(name for server in to_start for name in server.binaries())
        ports: dict[int, str] = {}
        for server in to_start:
            host = server.resource.connection.host
            if host not in _LOOPBACK_NAMES:
                raise LocalStackError(
                    f"{server.label}: local servers listen on {LOOPBACK} only, but the "
                    f"inventory says host {host!r}; set connection.host to {LOOPBACK}"
                )
            if server.port in ports:
                raise LocalStackError(
                    f"{server.label} and {ports[server.port]} both use port {server.port}; "
                    "give each a different connection.port in the inventory"
                )
            ports[server.port] = server.label
            if port_in_use(server.port):
                raise LocalStackError(
                    f"{server.label}: port {server.port} on {LOOPBACK} is already in use by "
                    "another program; change connection.port for this resource in the "
                    "inventory (or stop that program)"
                )

    def _ensure_running(self, server: Server, say: Progress) -> None:
        pid = server.pid()
        if pid is not None:
            say(f"{server.label} already running (pid {pid}) on {LOOPBACK}:{server.port}")
            current = self._fresh_server(self.inventory.get(server.name))
            if current.resource != server.resource:
                say(f"{server.label} runs with older settings; restart it to apply the inventory")
        else:
            say(f"{server.label} starting on {LOOPBACK}:{server.port}")
            began = time.monotonic()
            server.folder.mkdir(parents=True, exist_ok=True)
            server.remove_stale_pid_file()
            write_atomic(server.folder / _RECORD, server.resource.model_dump_json(indent=2))
            server.start()
            self._wait_until_answers(server)
            say(f"{server.label} ready in {time.monotonic() - began:.1f} s")
        server.provision()

    def _wait_until_answers(self, server: Server) -> None:
        """Poll until the server answers; fail fast if it dies, with its log either way."""
        deadline = time.monotonic() + self.timeout
        while True:
            written = read_pid(server.pid_path)
            alive = written is not None and is_alive(written, server.process_name)
            if alive and server.answers():
                return
            if written is not None and not alive:
                raise LocalStackError(f"{server.label} exited during startup; {log_excerpt(server.log_path)}")
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"{server.label} did not answer on {LOOPBACK}:{server.port} within "
                    f"{self.timeout:.0f} s; {log_excerpt(server.log_path)}"
                )
            time.sleep(_POLL_S)

    def _stop(self, server: Server, say: Progress) -> None:
        """Signal the server, wait for its exit, and escalate once if it lingers."""
        pid = server.pid()
        if pid is None:
            return
        say(f"{server.label} stopping (pid {pid})")
        for attempt, sig in enumerate((server.graceful_signal, server.forceful_signal)):
            if attempt:
                say(f"{server.label} still running after {self.timeout:.0f} s; sending {sig.name}")
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break  # it exited between the check and the signal
            if self._wait_for_exit(pid, server.process_name):
                break
        else:
            raise LocalStackError(
                f"{server.label} (pid {pid}) did not exit after {server.forceful_signal.name}; "
                f"{log_excerpt(server.log_path)}"
            )
        say(f"{server.label} stopped")

    def _wait_for_exit(self, pid: int, process_name: str) -> bool:
        deadline = time.monotonic() + self.timeout
        while is_alive(pid, process_name):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)
        return True
