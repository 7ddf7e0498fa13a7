"""redis-server as a local daemon: a memory-capped cache without persistence."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from opsgraph.tools.binaries import find_binary
from opsgraph.tools.environments.local.process import LOOPBACK, Server, run_launcher


class RedisServer(Server):
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
        run_launcher(
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
