"""A Redis started OUTSIDE OpsGraph, the way users run theirs: its own redis.conf, data dir and AOF.

The server is the evals' (`opsgraph.evals.outside.OutsideRedis`: it daemonizes, with a
pidfile and a logfile, so OpsGraph holds no handle on it and can only reach it as it
would reach a user's server — by its port, and by the lifecycle commands an inventory
declares). The tests add what only they do to it: a crash, a client of their own, and
an inventory file.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry
from support import wait_for

from opsgraph.evals import outside
from opsgraph.evals.outside import port_open

__all__ = ["OutsideRedis", "outside_redis", "port_open"]


@dataclass
class OutsideRedis(outside.OutsideRedis):
    """One redis-server of our own, outside OpsGraph's state folder (AOF on, no maxmemory)."""

    def client(self, name: str | None = None) -> redis.Redis:
        """A new client of the test's own; no retries, so a closed socket shows as an error."""
        return redis.Redis(
            port=self.port, client_name=name, socket_timeout=5, retry=Retry(NoBackoff(), 0), decode_responses=True
        )

    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def sigkill(self) -> int:
        """Crash it (SIGKILL: no shutdown, no final save); returns the pid that died."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not port_open(self.port), f"port {self.port} to close after SIGKILL")
        return pid

    def inventory_entry(self, name: str = "cache", **external: Any) -> dict[str, Any]:
        """An `environment: external` resource for this server; `external` overrides the section."""
        return super().inventory_entry(name, **external)

    def write_inventory(self, path: Path, **external: Any) -> Path:
        path.write_text(yaml.safe_dump({"version": 1, "resources": [self.inventory_entry(**external)]}))
        return path


@contextmanager
def outside_redis(folder: Path, maxclients: int | None = None) -> Iterator[OutsideRedis]:
    """A started outside Redis in `folder` (resolved: Redis reports its `dir` as a real path); stopped after."""
    server = OutsideRedis(folder=folder.resolve(), maxclients=maxclients)
    server.start()
    try:
        yield server
    finally:
        server.stop()
