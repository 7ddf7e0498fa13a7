"""A detached client that holds N sessions to Redis or PostgreSQL: the leaks and the long queries.

`opsgraph inject` exits right after injecting, so the sessions that make these faults
are held by a process of their own (``python -m opsgraph.tools.faults.session_holder
--plan PLAN.json``, in its own session), as a leaking worker would hold them:

- ``redis`` / ``idle``: raw connections that name themselves (CLIENT SETNAME) and then
  send nothing, like a pool that forgot to give its connections back;
- ``postgres`` / ``idle``: sessions that log in and sit idle;
- ``postgres`` / ``sleep``: sessions each running one long query (``pg_sleep``).

A session the server closes (OpsGraph disconnecting an idle client, terminating a
backend) is not re-opened: the leak is the past, its sessions are what is left of it.
The holder is bounded — at most MAX_SESSIONS sessions for at most MAX_LIFETIME_S — and
leaves by itself when its lifetime is up, on SIGTERM (`sessions.stop_holder`), when its
state file is gone or names another process (the state folder was deleted, a newer
holder), or when the server has closed every session it held.

The password, if any, comes through the environment variable the plan names (never the
plan file or the command line). The state file says ``ready`` once every session is
open (or ``error`` and why), which is what the injecting side waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg

from opsgraph.tools.atomic_file import write_atomic

MAX_SESSIONS = 2000
MAX_LIFETIME_S = 3600.0
_TICK_S = 0.2
_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class HoldPlan:
    """What to hold, where, and for how long; read from the plan file."""

    kind: Literal["redis", "postgres"]
    mode: Literal["idle", "sleep"]
    host: str
    port: int
    count: int
    name: str  # CLIENT SETNAME / application_name: who the leak looks like
    lifetime_s: float
    state_file: Path
    user: str | None = None
    dbname: str | None = None
    password_env: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SESSIONS:
            raise ValueError(f"count must be 1..{MAX_SESSIONS}, got {self.count}")
        if not 0 < self.lifetime_s <= MAX_LIFETIME_S:
            raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME_S:.0f}] s, got {self.lifetime_s}")
        if (self.kind, self.mode) not in {("redis", "idle"), ("postgres", "idle"), ("postgres", "sleep")}:
            raise ValueError(f"no {self.mode} mode for {self.kind}")
        if any(ord(c) <= 32 for c in self.name) and self.kind == "redis":
            raise ValueError(f"a Redis client name has no spaces: {self.name!r}")

    @classmethod
    def read(cls, path: Path) -> HoldPlan:
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(**{**raw, "state_file": Path(raw["state_file"])})

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "state_file": str(self.state_file)})


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} session holder {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _resp(*parts: str) -> bytes:
    """A command in the Redis protocol: the leaked connections are bare sockets."""
    return (f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)).encode()


class Sessions(Protocol):
    """The sessions held, whatever their kind; `alive()` drops the ones the server closed."""

    def alive(self) -> int: ...

    def close(self) -> None: ...


class RedisIdle:
    def __init__(self, plan: HoldPlan) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(plan.count):
            sock = socket.create_connection((plan.host, plan.port), timeout=_CONNECT_TIMEOUT_S)
            self.sockets.append(sock)
            sock.sendall(_resp("CLIENT", "SETNAME", plan.name))
            reply = sock.recv(256)
            if reply != b"+OK\r\n":
                raise RuntimeError(f"Redis refused connection {len(self.sockets)}: {reply!r}")

    def alive(self) -> int:
        readable, _, _ = select.select(self.sockets, [], [], 0) if self.sockets else ([], [], [])
        for sock in readable:  # an idle client gets nothing unless the server closes it
            try:
                data = sock.recv(256)
            except OSError:
                data = b""
            if not data:
                sock.close()
                self.sockets.remove(sock)
        return len(self.sockets)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _postgres(plan: HoldPlan) -> psycopg.Connection[Any]:
    password = os.environ.get(plan.password_env) if plan.password_env else None
    return psycopg.connect(
        host=plan.host,
        port=plan.port,
        user=plan.user,
        dbname=plan.dbname,
        password=password,
        application_name=plan.name,
        connect_timeout=_CONNECT_TIMEOUT_S,
        autocommit=True,
    )


class PostgresIdle:
    def __init__(self, plan: HoldPlan) -> None:
        self.connections: list[psycopg.Connection[Any]] = []
        for _ in range(plan.count):
            self.connections.append(_postgres(plan))

    def alive(self) -> int:
        if not self.connections:
            return 0
        readable, _, _ = select.select([c.fileno() for c in self.connections], [], [], 0)
        for conn in [c for c in self.connections if c.fileno() in readable]:  # terminated: FATAL, then EOF
            conn.close()
            self.connections.remove(conn)
        return len(self.connections)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


class PostgresSleep:
    """One thread per session, each blocked in its one long query until it ends or is terminated."""

    def __init__(self, plan: HoldPlan) -> None:
        self.connections = [_postgres(plan) for _ in range(plan.count)]
        self.running = len(self.connections)
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._sleep, args=(conn, plan.lifetime_s), daemon=True) for conn in self.connections
        ]
        for thread in self.threads:
            thread.start()

    def _sleep(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        try:
            conn.execute("SELECT pg_sleep(%s)", (seconds,))
        except psycopg.Error:
            pass  # terminated (or cancelled): this session is over either way
        finally:
            with self._lock:
                self.running -= 1

    def alive(self) -> int:
        with self._lock:
            return self.running

    def close(self) -> None:
        """Cancel the queries first: a backend in pg_sleep does not notice that its client has gone."""
        for conn in self.connections:
            try:
                conn.cancel_safe(timeout=2)
            except psycopg.Error:
                continue  # already terminated
        for thread in self.threads:
            thread.join(timeout=3)
        for conn in self.connections:
            conn.close()


def _open(plan: HoldPlan) -> Sessions:
    if plan.kind == "redis":
        return RedisIdle(plan)
    return PostgresIdle(plan) if plan.mode == "idle" else PostgresSleep(plan)


def _still_mine(state_file: Path) -> bool:
    try:
        return int(json.loads(state_file.read_text())["pid"]) == os.getpid()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_state(plan: HoldPlan, status: str, **extra: Any) -> None:
    plan.state_file.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "status": status,
        "target": f"{plan.kind}://{plan.host}:{plan.port}",
        "count": plan.count,
        "expires_at": time.time() + plan.lifetime_s,
        **extra,
    }
    write_atomic(plan.state_file, json.dumps(state))


def hold(plan: HoldPlan) -> str:
    """Open the sessions, then hold them until a reason to stop; returns that reason."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    _write_state(plan, "opening")
    try:
        sessions = _open(plan)
    except (OSError, RuntimeError, psycopg.Error) as error:
        _write_state(plan, "error", error=f"{type(error).__name__}: {str(error).strip()}")
        return f"could not open the sessions: {error}"
    _write_state(plan, "ready")
    _say(f"holding {plan.count} {plan.mode} {plan.kind} sessions on {plan.host}:{plan.port} as {plan.name!r}")
    deadline = time.monotonic() + plan.lifetime_s
    try:
        while not stopping.wait(_TICK_S):
            if time.monotonic() >= deadline:
                return f"lifetime of {plan.lifetime_s:.0f} s is up"
            if not _still_mine(plan.state_file):
                return f"{plan.state_file} is gone or names another holder"
            if sessions.alive() == 0:
                return "the server closed every session"
        return "stopped by signal"
    finally:
        sessions.close()
        if _still_mine(plan.state_file):
            plan.state_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plan", type=Path, required=True, help="the HoldPlan as JSON")
    options = parser.parse_args(argv)
    try:
        plan = HoldPlan.read(options.plan)
    except (OSError, ValueError, TypeError, KeyError) as error:
        parser.error(f"{options.plan}: {error}")
    _say(f"exiting: {hold(plan)}")


if __name__ == "__main__":
    main()
