"""Servers started OUTSIDE OpsGraph, the way users run theirs, and a private Docker Engine for containers.

A scenario's `started_by: outside` servers are started here, never through OpsGraph's
local stack: each has its own config file, data directory, log and pid file in the
run's folder, is started by its own binary as its owner would start it (the daemon
forks; nothing here holds a handle on it), and is described to OpsGraph as
`environment: external` — reachable by its port, operated only by the lifecycle
commands its inventory entry declares. Containers run in a private Docker Engine
(`dockerd` on its own socket, data and namespace, without networking), from images
built `FROM scratch` out of host binaries, since no registry can be reached.

- `OutsideRedis`: redis.conf with its own dir, optional maxmemory (noeviction),
  maxclients and AOF persistence (`appendfsync always`: a crash loses nothing).
- `OutsidePostgres`: initdb'd with scram-sha-256 and a superuser password; the roles
  it is told to trust log in from loopback without one (an app's own role), the rest
  need theirs. PostgreSQL refuses to run as root, so as root every server command runs
  as the postgres user through `setpriv`, keeping DAC override for root-owned folders.
- `DockerEngine`: the private engine and its images.

Everything stops again (`stop`/`cleanup`), whatever a fix did to the server meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import psycopg
import redis
from docker.errors import DockerException
from psycopg import sql

from opsgraph.tools.binaries import as_postgres_user, find_binary, postgres_binary

T = TypeVar("T")
_TIMEOUT_S = 60.0
_POLL_S = 0.05


class OutsideError(RuntimeError):
    """A server could not be started or stopped as its owner would; the message says what and where."""


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = _TIMEOUT_S) -> T:
    """Poll `condition` until it returns something truthy; OutsideError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise OutsideError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(_POLL_S)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on now and that this process has not handed out before: the
    kernel may give one free port to two binds in a row, and a scenario's servers need one each."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_open(port: int) -> bool:
    """Whether anything accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """A live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a folder of ours): what must be gone after a stop."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes() and process_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue  # it exited meanwhile
    return found


def _run(argv: list[str], what: str, timeout_s: float = _TIMEOUT_S) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise OutsideError(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}")


# ---- Redis


@dataclass
class OutsideRedis:
    """One redis-server of its own in `folder` (resolved: Redis reports its `dir` as a real path)."""

    folder: Path
    port: int = field(default_factory=free_port)
    maxmemory_mb: int | None = None
    maxclients: int | None = None
    appendonly: bool = True

    @property
    def config_file(self) -> Path:
        return self.folder / "redis.conf"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "redis.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / "redis.pid"

    @property
    def start_command(self) -> list[str]:
        """How its owner starts it (what an inventory's `external.commands.start` declares)."""
        return [str(find_binary("redis-server")), str(self.config_file)]

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize yes",
            f"pidfile {self.pid_file}",
            f"logfile {self.log_file}",
            f"dir {self.data_dir}",
            f"appendonly {'yes' if self.appendonly else 'no'}",
            "appendfsync always",
            'save ""',
        ]
        if self.maxmemory_mb is not None:
            lines += [f"maxmemory {self.maxmemory_mb}mb", "maxmemory-policy noeviction"]
        if self.maxclients is not None:
            lines.append(f"maxclients {self.maxclients}")
        self.config_file.write_text("\n".join(lines) + "\n")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError):
            return False

    def start(self) -> None:
        """Start it as a user would (the daemon forks and the command returns), then wait until it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self.write_config()
        _run(self.start_command, f"redis-server {self.config_file}", 30)
        wait_until(self.answers, f"redis-server on port {self.port} to answer")

    def running_pid(self) -> int | None:
        """The pid in the pid file while that process is still a redis-server (pid files go stale)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"redis-server" in command and process_alive(pid) else None

    def stop(self) -> None:
        """SIGTERM (then SIGKILL), and whatever else answers on its port (a server a fix started there)."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if port_open(self.port):
            with contextlib.suppress(redis.RedisError), self.client() as client:
                client.shutdown(nosave=True)
        for leftover in processes_mentioning(str(self.config_file)):
            os.kill(leftover, signal.SIGKILL)

    def inventory_entry(self, name: str, **external: Any) -> dict[str, Any]:
        """An `environment: external` resource for this server; `external` adds to the section (lifecycle…)."""
        paths = {
            "config_file": str(self.config_file),
            "data_dir": str(self.data_dir),
            "log_files": [str(self.log_file)],
            "pid_file": str(self.pid_file),
        }
        return {
            "name": name,
            "kind": "redis",
            "environment": "external",
            "connection": {"host": "127.0.0.1", "port": self.port},
            "external": {"timeout_s": 30.0, "paths": paths, **external},
        }


# ---- PostgreSQL


@dataclass
class OutsidePostgres:
    """One cluster in `folder`; `settings` go into its own postgresql.conf before the first start.

    `trusted` roles log in from loopback without a password (an app's role, as some sites
    run them); everyone else, the superuser included, authenticates with scram-sha-256.
    """

    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    password: str = "outside-secret"
    trusted: list[str] = field(default_factory=list)
    socket_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-")))  # short: sun_path

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "postgresql.conf"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def start_argv(self) -> list[str]:
        """How this server is started: what a user would put in `external.commands.start`."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        return [
            *as_postgres_user(), str(postgres_binary("pg_ctl")), "start", "-w", "-t", str(int(_TIMEOUT_S)),
            "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file),
        ]  # fmt: skip

    def initdb(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "pwfile"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        try:
            initdb = [
                *as_postgres_user(), str(postgres_binary("initdb")), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=scram-sha-256", f"--pwfile={password_file}", "--encoding=UTF8", "--locale=C", "--no-sync",
            ]  # fmt: skip
            _run(initdb, "initdb")
        finally:
            password_file.unlink()
        if self.settings:
            with self.config_file.open("a") as handle:
                handle.write("\n# its owner's settings\n")
                handle.writelines(f"{name} = {value}\n" for name, value in self.settings.items())
        if self.trusted:
            hba = self.data_dir / "pg_hba.conf"
            lines = [f"host all {role} 127.0.0.1/32 trust\n" for role in self.trusted]
            hba.write_text("".join(lines) + hba.read_text())  # first match wins

    def start(self) -> None:
        _run(self.start_argv(), f"pg_ctl start ({self.log_tail()})", _TIMEOUT_S + 10)
        wait_until(self.answers, f"the outside PostgreSQL on port {self.port} to accept connections")

    def connect(self, user: str = "postgres", dbname: str = "postgres") -> psycopg.Connection[Any]:
        password = None if user in self.trusted else self.password
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname=dbname, autocommit=True,
            connect_timeout=5,
        )  # fmt: skip

    def answers(self) -> bool:
        try:
            with self.connect():
                return True
        except psycopg.OperationalError:
            return False

    def create_app(self, role: str, database: str | None) -> None:
        """The app's ordinary role (trusted from loopback) and its database, owned by it."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
            if database is not None:
                create = sql.SQL("CREATE DATABASE {} OWNER {}")
                conn.execute(create.format(sql.Identifier(database), sql.Identifier(role)))

    def postmaster_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return "no log yet"

    def cleanup(self) -> None:
        """Stop at once (`pg_ctl stop -m immediate`), then kill whatever of it is left; remove the socket folder."""
        if self.postmaster_pid() is not None:
            subprocess.run(
                [
                    *as_postgres_user(),
                    str(postgres_binary("pg_ctl")),
                    "stop",
                    "-m",
                    "immediate",
                    "-w",
                    "-D",
                    str(self.data_dir),
                ],
                capture_output=True,
                timeout=_TIMEOUT_S,
                check=False,
            )
        for leftover in processes_mentioning(str(self.data_dir)):
            os.kill(leftover, signal.SIGKILL)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def inventory_entry(self, name: str, password_env: str, database: str | None, **external: Any) -> dict[str, Any]:
        """An `environment: external` resource: OpsGraph logs in as the superuser, password in `password_env`."""
        paths = {
            "config_file": str(self.config_file),
            "data_dir": str(self.data_dir),
            "log_files": [str(self.log_file)],
            "pid_file": str(self.pid_file),
        }
        connection = {"host": "127.0.0.1", "port": self.port, "user": "postgres", "password_env": password_env}
        return {
            "name": name,
            "kind": "postgres",
            "environment": "external",
            "connection": {**connection, **({"database": database} if database else {})},
            "external": {"timeout_s": 60.0, "paths": paths, **external},
        }


# ---- Docker


BUSYBOX_IMAGE = "opsgraph-eval/busybox"
_BUSYBOX_APPLETS = ("sh", "sleep", "cat", "echo", "dd", "tr", "head", "ps", "kill")


class DockerEngine:
    """A private dockerd: its own socket, data and containerd namespace, no networking (nothing on the host changes).

    `start` builds the busybox image (FROM scratch, copied from the host: no pull, no
    build container); `stop` removes every container, stops the daemon and cleans up what
    it leaves (shims, mounts).
    """

    def __init__(self) -> None:
        # Short path: unix socket paths are limited to 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="og-eval-docker-", dir="/tmp"))
        self.host = f"unix://{self.root}/docker.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise OutsideError("the private Docker Engine is not started")
        return self._client

    def start(self) -> None:
        dockerd = shutil.which("dockerd") or next(
            (p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if Path(p).exists()), None
        )
        if dockerd is None or not Path("/bin/busybox").exists():
            raise OutsideError(
                "container scenarios need a Docker Engine and busybox: apt-get install docker.io busybox-static"
            )
        (self.root / "daemon.json").write_text("{}")  # not the host's /etc/docker/daemon.json
        command = [
            dockerd, "--config-file", f"{self.root}/daemon.json",
            "--data-root", f"{self.root}/data", "--exec-root", f"{self.root}/exec",
            "--pidfile", f"{self.root}/dockerd.pid", "-H", self.host, "--iptables=false", "--bridge=none",
            "--containerd-namespace", "opsgraph-eval", "--containerd-plugins-namespace", "opsgraph-eval-plugins",
        ]  # fmt: skip
        with (self.root / "dockerd.log").open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._client = wait_until(self._ping, f"the private dockerd at {self.host} to answer", 30)
        self._build_busybox()

    def _ping(self) -> docker.DockerClient | None:
        if self._process is not None and self._process.poll() is not None:
            tail = (self.root / "dockerd.log").read_text()[-2000:]
            raise OutsideError(f"dockerd exited with {self._process.returncode}: {tail}")
        try:
            client = docker.DockerClient(base_url=self.host, timeout=30)
            client.ping()
        except DockerException:
            return None
        return client

    def _build_busybox(self) -> None:
        context = self.root / "build" / "busybox"
        (context / "rootfs" / "bin").mkdir(parents=True)
        shutil.copy("/bin/busybox", context / "rootfs" / "bin" / "busybox")
        for applet in _BUSYBOX_APPLETS:
            (context / "rootfs" / "bin" / applet).symlink_to("busybox")
        (context / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n')
        self.client.images.build(path=str(context), tag=BUSYBOX_IMAGE, rm=True, forcerm=True)

    def stop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(DockerException):
                for container in self._client.containers.list(all=True):
                    container.remove(force=True)
            self._client.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        for pid in processes_mentioning(str(self.root)):  # containerd, shims
            os.kill(pid, signal.SIGKILL)
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for point in sorted((p for p in points if p.startswith(f"{self.root}/")), key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
