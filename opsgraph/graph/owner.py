"""Who is doing something right now: a process on a host, and whether it still lives.

A claim on a step and a lease on an incident run name their owner, so that a second
process can tell "someone is doing this, wait" from "whoever did this was killed,
settle it". On this host, a pid whose process start time matches is alive; a pid that
was reused by another program is not. An owner on another host cannot be checked from
here and counts as alive: refusing to act twice beats acting twice (leases that expire
across hosts belong to the shared-state deployment).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str | None  # the process start time, telling a live owner from a reused pid
    token: str  # one claim or lease: two threads of one process are different owners

    @classmethod
    def here(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()), uuid.uuid4().hex)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Owner:
        return cls(str(data["host"]), int(data["pid"]), data.get("started"), str(data["token"]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def alive(self) -> bool:
        if self.host != socket.gethostname():
            return True
        return self.started is not None and _process_start(self.pid) == self.started

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"
