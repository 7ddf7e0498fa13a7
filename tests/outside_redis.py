"""A Redis started OUTSIDE OpsGraph, the way users run theirs: its own redis.conf, data dir and AOF.

The server daemonizes (pidfile + logfile), so OpsGraph holds no handle on it: it can
only reach it as it would reach a user's server — by its port, and by the lifecycle
commands an inventory declares.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry
from support import free_port, wait_for

_STOP_TIMEOUT_S = 30


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise AssertionError("these tests need redis-server: install it (apt-get install redis-server)")
    return binary


def port_open(port: int) -> bool:
    """Whether anything accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class OutsideRedis:
    """One redis-server of our own, outside OpsGraph's state folder."""

    folder: Path
    port: int

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
        return [redis_server_binary(), str(self.config_file)]

    def write_config(self, maxclients: int | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize yes",
            f"pidfile {self.pid_file}",
            f"logfile {self.log_file}",
            f"dir {self.data_dir}",
            "appendonly yes",
            "appendfsync always",
            'save ""',
        ]
        if maxclients is not None:
            lines.append(f"maxclients {maxclients}")
        self.config_file.write_text("\n".join(lines) + "\n")

    def client(self, name: str | None = None) -> redis.Redis:
        """A new client of the test's own; no retries, so a closed socket shows as an error."""
        return redis.Redis(
            port=self.port, client_name=name, socket_timeout=5, retry=Retry(NoBackoff(), 0), decode_responses=True
        )

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except (redis.BusyLoadingError, redis.ConnectionError):
            return False

    def start(self) -> None:
        """Start it as a user would (the daemon forks and the command returns), then wait until it answers."""
        subprocess.run(self.start_command, check=True, capture_output=True, timeout=30)
        wait_for(self.answers, f"redis-server on port {self.port} to answer")

    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def _running_pid(self) -> int | None:
        """The pid in the pid file when that process is still this redis-server (pid files go stale)."""
        try:
            pid = self.pid()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"redis-server" in cmdline else None

    def sigkill(self) -> int:
        """Crash it (SIGKILL: no shutdown, no final save); returns the pid that died."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not port_open(self.port), f"port {self.port} to close after SIGKILL")
        return pid

    def stop(self) -> None:
        """Stop it at teardown if it runs (SIGTERM, then SIGKILL if it hangs), and whatever
        else a test left answering on its port (e.g. a server a wrong start command put there)."""
        pid = self._running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while port_open(self.port) and time.monotonic() < deadline:
                time.sleep(0.1)
            if port_open(self.port):
                os.kill(pid, signal.SIGKILL)
        if port_open(self.port):
            with contextlib.suppress(redis.RedisError), self.client() as client:
                client.shutdown(nosave=True)

    def inventory_entry(self, name: str = "cache", **external: Any) -> dict[str, Any]:
        """An `environment: external` resource for this server; `external` overrides the section."""
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
            "external": {"timeout_s": 30, "paths": paths, **external},
        }

    def write_inventory(self, path: Path, **external: Any) -> Path:
        path.write_text(yaml.safe_dump({"version": 1, "resources": [self.inventory_entry(**external)]}))
        return path


@contextmanager
def outside_redis(folder: Path, maxclients: int | None = None) -> Iterator[OutsideRedis]:
    """A started outside Redis in `folder` (resolved: Redis reports its `dir` as a real path); stopped after."""
    server = OutsideRedis(folder=folder.resolve(), port=free_port())
    server.folder.mkdir(parents=True, exist_ok=True)
    server.write_config(maxclients)
    server.start()
    try:
        yield server
    finally:
        server.stop()
