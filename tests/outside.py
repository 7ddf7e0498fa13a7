"""Servers started outside OpsGraph, as users have them: their own config, data and persistence.

Nothing here goes through OpsGraph's state folder; tests describe these servers in an
inventory (`environment: external`) and check that OpsGraph adopts them without ever
replacing them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from support import free_port, wait_for

from opsgraph.tools.binaries import find_binary


@dataclass
class HandStartedRedis:
    """A Redis with AOF persistence started from its own redis.conf in `folder`."""

    folder: Path
    port: int
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis(port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    @property
    def config_file(self) -> Path:
        return self.folder / "redis.conf"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def pid_file(self) -> Path:
        return self.folder / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "redis.log"

    @property
    def start_argv(self) -> list[str]:
        """How its owner starts it (what an inventory's `external.commands.start` declares)."""
        return [str(find_binary("redis-server")), str(self.config_file)]

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize yes\npidfile {self.pid_file}\nlogfile {self.log_file}\n"
            f'dir {self.data_dir}\nappendonly yes\nappendfsync always\nsave ""\n'
        )

    def start(self) -> None:
        subprocess.run(self.start_argv, check=True, timeout=30, stdin=subprocess.DEVNULL)
        wait_for(self.answers, f"the hand-started redis on port {self.port} to answer", 30)

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def pid(self) -> int:
        return int(self.client.info("server")["process_id"])

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to save (AOF with appendfsync always keeps every write)."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self.listening(), f"redis pid {pid} to die", 30)

    def stop(self) -> None:
        """Whatever answers on the port now is shut down (the test's own cleanup)."""
        with contextlib.suppress(redis.RedisError):
            self.client.shutdown(nosave=True)
        self.client.close()


@contextmanager
def start_hand_redis(folder: Path) -> Iterator[HandStartedRedis]:
    server = HandStartedRedis(folder, free_port())
    server.write_config()
    server.start()
    try:
        yield server
    finally:
        server.stop()
