"""The local environment: real redis-server, PostgreSQL and nginx daemons on loopback.

Each resource gets ``<state_dir>/local/<name>/`` holding its data, generated
config, log and pid file, plus ``resource.json``, the inventory entry it was
started with. Everything needed to find, probe and stop a server is therefore on
disk: ``opsgraph up`` starts daemons and exits, and a later ``opsgraph down`` (a new
process, possibly after the inventory was edited) still stops exactly what was
started. Deleting the state folder removes every trace. No Docker involved.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import psycopg
import redis
from psycopg import sql
from pydantic import BaseModel, ConfigDict, ValidationError

from opsgraph.tools.binaries import find_binaries, find_binary
from opsgraph.tools.inventory import Environment, Inventory, Resource, ResourceKind

Progress = Callable[[str], None]

LOOPBACK = "127.0.0.1"
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
_RECORD = "resource.json"
_POLL_S = 0.05
_LOG_LINES_IN_ERRORS = 20
# sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
# The line that makes postgresql.conf read the settings OpsGraph writes.
_INCLUDE = "include 'opsgraph.conf'"


class LocalStackError(RuntimeError):
    """A local server could not be started or stopped; the message says why and what to do."""


class ProcessStatus(BaseModel):
    """What one local server is doing, as seen from any process."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ResourceKind
    port: int
    pid: int | None
    running: bool  # the pid is alive AND the server answers on its port
    log_path: Path


def _ignore(_: str) -> None:
    """Default progress callback."""


# --------------------------------------------------------------------------- processes


def _read_pid(path: Path) -> int | None:
    """First token of a pid file (postmaster.pid has more lines), or None."""
    try:
        first = path.read_text().split(maxsplit=1)
    except FileNotFoundError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


def _alive(pid: int, process_name: str) -> bool:
    """Whether ``pid`` is a live (non-zombie) process called ``process_name``.

    The name check stops a stale pid file, whose pid the kernel has since given to
    an unrelated program, from passing for a running server. The zombie check
    matters because daemons are re-parented to init, which may reap them late.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user (PostgreSQL runs as postgres)
    if not Path("/proc/self").exists():
        return True  # not Linux: existence is all we can tell
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # Format: "pid (comm) state ..."; comm may contain spaces and parentheses.
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2]
    return state != "Z" and comm == process_name[:15]  # the kernel truncates comm


def _port_in_use(port: int) -> bool:
    """Whether something already holds 127.0.0.1:port (listening or merely bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file, reading only its end (logs can grow large)."""
    if lines <= 0:
        return []
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        start, data = end, b""
        while start > 0 and data.count(b"\n") <= lines:
            start = max(0, start - 8192)
            handle.seek(start)
            data = handle.read(end - start)
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def _log_excerpt(path: Path) -> str:
    tail = _tail(path, _LOG_LINES_IN_ERRORS)
    if not tail:
        return f"(the log {path} is empty)"
    return f"last lines of {path}:\n" + "\n".join(f"  {line}" for line in tail)


def _run(command: Sequence[str | Path], log_path: Path, what: str, timeout: float) -> None:
    """Run a launcher command, appending its output to the server's log.

    Output goes to a file, never a pipe: a daemon that inherits a pipe would keep
    it open and make us wait for an EOF that never comes.
    """
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                [str(part) for part in command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalStackError(f"{what} did not finish within {timeout:.0f} s; {_log_excerpt(log_path)}") from None
    if result.returncode != 0:
        raise LocalStackError(f"{what} failed (exit status {result.returncode}); {_log_excerpt(log_path)}")


def _running_as_root() -> bool:
    return os.geteuid() == 0


# --------------------------------------------------------------------------- servers


class _Server:
    """One daemon: how to start it, how to tell it answers, and how to stop it.

    Subclasses describe a kind; the orchestration (waiting, timeouts, port checks)
    lives in LocalStack so that it is written once.
    """

    process_name: ClassVar[str]
    # Stop politely first; if the process outlives the timeout, send the second one.
    graceful_signal: ClassVar[signal.Signals]
    forceful_signal: ClassVar[signal.Signals]

    def __init__(self, resource: Resource, folder: Path, timeout: float) -> None:
        self.resource = resource
        self.folder = folder
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def port(self) -> int:
        return self.resource.connection.port

    @property
    def label(self) -> str:
        return f"{self.name} ({self.resource.kind})"

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def pid_path(self) -> Path:
        raise NotImplementedError

    def binaries(self) -> list[str]:
        """Executables that start() needs, checked before anything starts."""
        raise NotImplementedError

    def start(self) -> None:
        """Launch the daemon; returns once the launcher has exited (not once it answers)."""
        raise NotImplementedError

    def answers(self) -> bool:
        """Whether the server does its job on its port (a protocol-level check)."""
        raise NotImplementedError

    def provision(self) -> None:
        """Create what the inventory expects to exist inside a running server."""

    def pid(self) -> int | None:
        """The server's pid if it is alive, else None (a stale pid file counts as none)."""
        pid = _read_pid(self.pid_path)
        return pid if pid is not None and _alive(pid, self.process_name) else None

    def remove_stale_pid_file(self) -> None:
        """Forget a pid file left by a crash so that it cannot be mistaken for the new one."""
        if _read_pid(self.pid_path) is not None and self.pid() is None:
            self.pid_path.unlink(missing_ok=True)

    def status(self) -> ProcessStatus:
        pid = self.pid()
        return ProcessStatus(
            name=self.name,
            kind=self.resource.kind,
            port=self.port,
            pid=pid,
            running=pid is not None and self.answers(),
            log_path=self.log_path,
        )


class _Redis(_Server):
    process_name = "redis-server"
    graceful_signal = signal.SIGTERM  # with --save "" nothing is written on the way out
    forceful_signal = signal.SIGKILL

    @property
    def log_path(self) -> Path:
        return self.folder / "redis.log"

    @property
    def pid_path(self) -> Path:
        return self.folder / "redis.pid"

    def binaries(self) -> list[str]:
        return ["redis-server"]

    def start(self) -> None:
        # A cache for experiments: no persistence, and noeviction so that running out
        # of memory shows up as errors (a failure OpsGraph must detect) instead of
        # silently dropped keys.
        _run(
            [
                find_binary("redis-server"),
                "--daemonize", "yes",
                "--bind", LOOPBACK,
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--maxmemory", f"{self.resource.local.maxmemory_mb}mb",
                "--maxmemory-policy", "noeviction",
                "--pidfile", self.pid_path,
                "--logfile", self.log_path,
                "--dir", self.folder,
            ],
            self.log_path,
            f"starting redis-server for {self.label}",
            self.timeout,
        )  # fmt: skip

    def answers(self) -> bool:
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


class _Postgres(_Server):
    process_name = "postgres"
    graceful_signal = signal.SIGINT  # what `pg_ctl stop -m fast` sends
    forceful_signal = signal.SIGQUIT  # what `pg_ctl stop -m immediate` sends

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def binaries(self) -> list[str]:
        # PostgreSQL refuses to run as root; setpriv drops to the postgres user.
        return ["pg_ctl", "initdb", *(["setpriv"] if _running_as_root() else [])]

    def _tool(self, name: str) -> Path:
        """initdb/pg_ctl of the same installation, so that versions never mix."""
        sibling = find_binary("pg_ctl").resolve().parent / name
        return sibling if sibling.exists() else find_binary(name)

    def _command(self, name: str, *arguments: str | Path) -> list[str | Path]:
        """A PostgreSQL command line, wrapped to run as the postgres user when we are root.

        The capabilities keep DAC override so that the server can still write into
        the (root-owned) state folder after dropping privileges.
        """
        command: list[str | Path] = [self._tool(name), *arguments]
        if not _running_as_root():
            return command
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LocalStackError(
                f"{self.label}: PostgreSQL cannot run as root and there is no 'postgres' "
                "user to run it as: install it with `apt-get install postgresql` "
                "or run OpsGraph as an ordinary user"
            ) from None
        return [
            find_binary("setpriv"),
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--inh-caps=+dac_override",
            "--ambient-caps=+dac_override",
            *command,
        ]

    def _settings(self) -> str:
        """Settings OpsGraph owns, rewritten at every start so inventory edits apply.

        They live in an included file rather than on the command line so that
        ALTER SYSTEM (postgresql.auto.conf, read later) can still override them.
        """
        socket_dir = str(self.folder)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _MAX_SOCKET_PATH:
            socket_dir = ""  # too long for a Unix socket; OpsGraph only uses TCP
        quoted = socket_dir.replace("'", "''")
        return (
            "# Written by OpsGraph at every start; edit the inventory instead.\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{quoted}'\n"
            f"max_connections = {self.resource.local.max_connections}\n"
        )

    def _initdb(self) -> None:
        _run(
            self._command(
                "initdb",
                "-D", self.data_dir,
                "-U", "postgres",
                "--auth=trust",  # a private instance reachable only on loopback
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            self.log_path,
            f"initdb for {self.label}",
            self.timeout,
        )  # fmt: skip

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        (self.data_dir / "opsgraph.conf").write_text(self._settings())
        # Checked at every start, not just after initdb, so that an interrupted
        # first start cannot leave a server on the default port 5432.
        conf = self.data_dir / "postgresql.conf"
        if _INCLUDE not in conf.read_text():
            with conf.open("a") as handle:
                handle.write(f"\n{_INCLUDE}\n")
        _run(
            self._command(
                "pg_ctl", "start", "-w",
                "-t", str(max(1, round(self.timeout))),
                "-D", self.data_dir,
                "-l", self.log_path,
            ),
            self.log_path,
            f"pg_ctl start for {self.label}",
            self.timeout + 5,
        )  # fmt: skip

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=LOOPBACK,
            port=self.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )

    def answers(self) -> bool:
        try:
            with self._connect():
                return True
        except psycopg.Error:
            return False

    def provision(self) -> None:
        """Create the inventory's role and database if missing (idempotent)."""
        user = self.resource.connection.user
        database = self.resource.connection.database
        with self._connect() as conn:
            role_query = "SELECT 1 FROM pg_roles WHERE rolname = %s"
            if user and user != "postgres" and not conn.execute(role_query, (user,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
            database_query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if database and not conn.execute(database_query, (database,)).fetchone():
                owner = sql.Identifier(user or "postgres")
                create = sql.SQL("CREATE DATABASE {} OWNER {}")
                conn.execute(create.format(sql.Identifier(database), owner))


def _nginx_quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx_config(folder: Path, port: int) -> str:
    """The whole nginx.conf of a local nginx: everything it writes stays in ``folder``.

    Every temp path is set explicitly because the compiled-in defaults point at
    /var/lib/nginx, which an ordinary user cannot write and which the system nginx uses.
    """

    def q(name: str) -> str:
        return _nginx_quote(folder / name)

    # As root the workers would switch to `nobody`, who cannot enter a private
    # state folder to write temp files; loopback-only dev instance, so keep root.
    user = "user root;\n" if _running_as_root() else ""
    return f"""\
# Generated by OpsGraph at every start; edit the inventory instead.
{user}daemon on;
worker_processes 1;
pid {q("nginx.pid")};
error_log {q("error.log")} notice;

events {{
    worker_connections 256;
}}

http {{
    access_log {q("access.log")};
    client_body_temp_path {q("tmp/client_body")};
    proxy_temp_path {q("tmp/proxy")};
    fastcgi_temp_path {q("tmp/fastcgi")};
    uwsgi_temp_path {q("tmp/uwsgi")};
    scgi_temp_path {q("tmp/scgi")};
    default_type text/plain;

    server {{
        listen {LOOPBACK}:{port};
        server_name localhost;

        location = /nginx_status {{
            stub_status;
        }}

        location / {{
            return 200 "ok\\n";
        }}
    }}
}}
"""


class _Nginx(_Server):
    process_name = "nginx"
    # What `nginx -s quit` sends (finish requests, then exit), then fast shutdown;
    # SIGKILL would orphan the workers, which keep the port.
    graceful_signal = signal.SIGQUIT
    forceful_signal = signal.SIGTERM

    @property
    def log_path(self) -> Path:
        return self.folder / "error.log"

    @property
    def pid_path(self) -> Path:
        return self.folder / "nginx.pid"

    @property
    def config_path(self) -> Path:
        return self.folder / "nginx.conf"

    def binaries(self) -> list[str]:
        return ["nginx"]

    def _command(self, *arguments: str) -> list[str | Path]:
        # -e: the log used before the config is read (the default is /var/log/nginx).
        return [
            find_binary("nginx"),
            "-e", self.log_path,
            "-p", f"{self.folder}/",
            "-c", self.config_path,
            *arguments,
        ]  # fmt: skip

    def start(self) -> None:
        (self.folder / "tmp").mkdir(exist_ok=True)
        self.config_path.write_text(nginx_config(self.folder, self.port))
        _run(
            self._command("-t", "-q"),
            self.log_path,
            f"nginx -t for {self.label}",
            self.timeout,
        )
        _run(
            self._command(),
            self.log_path,
            f"starting nginx for {self.label}",
            self.timeout,
        )

    def answers(self) -> bool:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1)
        try:
            connection.request("GET", "/nginx_status")
            response = connection.getresponse()
            return response.status == 200 and response.read().startswith(b"Active connections")
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


_KINDS: dict[ResourceKind, type[_Server]] = {
    ResourceKind.REDIS: _Redis,
    ResourceKind.POSTGRES: _Postgres,
    ResourceKind.NGINX: _Nginx,
}


# --------------------------------------------------------------------------- the stack


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
            for server in self._started_servers():
                self._stop(server, say)

    def status(self) -> list[ProcessStatus]:
        """Status of each local resource, plus any still-running server the inventory
        no longer lists (``down`` would stop it)."""
        statuses = [self._server(resource).status() for resource in self._resources()]
        listed = {status.name for status in statuses}
        statuses += [
            server.status()
            for server in self._started_servers()
            if server.name not in listed and server.pid() is not None
        ]
        return statuses

    def restart(self, resource_name: str) -> ProcessStatus:
        """Stop then start one server with the current inventory settings.

        Redis keeps nothing across a restart (no persistence): that is intended.
        """
        resource = self._local_resource(resource_name)
        with self._locked():
            self._stop(self._server(resource), _ignore)
            server = self._fresh_server(resource)
            self._preflight([server])
            self._ensure_running(server, _ignore)
            return server.status()

    def log_tail(self, resource_name: str, lines: int = 50) -> list[str]:
        """The last ``lines`` lines of the server's log (empty if it never started)."""
        return _tail(self._server(self._local_resource(resource_name)).log_path, lines)

    # ---- resources and their servers

    def _resources(self) -> list[Resource]:
        return [r for r in self.inventory.resources if r.environment is Environment.LOCAL]

    def _local_resource(self, name: str) -> Resource:
        resource = self.inventory.get(name)  # KeyError names the missing resource
        if resource.environment is not Environment.LOCAL:
            raise LocalStackError(f"resource {name!r} runs in the {resource.environment} environment, not local")
        return resource

    def _folder(self, name: str) -> Path:
        return self._root / name

    def _fresh_server(self, resource: Resource) -> _Server:
        return _KINDS[resource.kind](resource, self._folder(resource.name), self.timeout)

    def _recorded(self, name: str) -> Resource | None:
        """The inventory entry a server was last started with, if readable."""
        path = self._folder(name) / _RECORD
        try:
            return Resource.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except ValidationError as error:
            raise LocalStackError(
                f"{path} is unreadable ({error.error_count()} errors); stop the server "
                f"by hand if it runs, then delete {path.parent}"
            ) from None

    def _server(self, resource: Resource) -> _Server:
        """The server for ``resource`` as it runs now: its recorded settings if it was
        started with different ones (so we probe and stop the right port)."""
        recorded = self._recorded(resource.name)
        if recorded is not None and recorded != resource:
            running = self._fresh_server(recorded)
            if running.pid() is not None:
                return running
        return self._fresh_server(resource)

    def _started_servers(self) -> list[_Server]:
        """Every server that has a record in the state folder (inventory or not)."""
        if not self._root.is_dir():
            return []
        servers = []
        for folder in sorted(self._root.iterdir()):
            recorded = self._recorded(folder.name) if folder.is_dir() else None
            if recorded is not None:
                servers.append(self._fresh_server(recorded))
        return servers

    # ---- lifecycle steps

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down/restart across processes (the CLI and the agent may race)."""
        self._root.mkdir(parents=True, exist_ok=True)
        with (self._root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _preflight(self, to_start: list[_Server]) -> None:
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
            if _port_in_use(server.port):
                raise LocalStackError(
                    f"{server.label}: port {server.port} on {LOOPBACK} is already in use by "
                    "another program; change connection.port for this resource in the "
                    "inventory (or stop that program)"
                )

    def _ensure_running(self, server: _Server, say: Progress) -> None:
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
            (server.folder / _RECORD).write_text(server.resource.model_dump_json(indent=2))
            server.start()
            self._wait_until_answers(server)
            say(f"{server.label} ready in {time.monotonic() - began:.1f} s")
        server.provision()

    def _wait_until_answers(self, server: _Server) -> None:
        """Poll until the server answers; fail fast if it dies, with its log either way."""
        deadline = time.monotonic() + self.timeout
        while True:
            written = _read_pid(server.pid_path)
            alive = written is not None and _alive(written, server.process_name)
            if alive and server.answers():
                return
            if written is not None and not alive:
                raise LocalStackError(f"{server.label} exited during startup; {_log_excerpt(server.log_path)}")
            if time.monotonic() > deadline:
                raise LocalStackError(
                    f"{server.label} did not answer on {LOOPBACK}:{server.port} within "
                    f"{self.timeout:.0f} s; {_log_excerpt(server.log_path)}"
                )
            time.sleep(_POLL_S)

    def _stop(self, server: _Server, say: Progress) -> None:
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
                f"{_log_excerpt(server.log_path)}"
            )
        say(f"{server.label} stopped")

    def _wait_for_exit(self, pid: int, process_name: str) -> bool:
        deadline = time.monotonic() + self.timeout
        while _alive(pid, process_name):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)
        return True
