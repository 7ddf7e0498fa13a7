"""Crashes: a server's process killed with SIGKILL on this host, as the OOM killer or a `kill -9` would.

No shutdown runs: Redis writes no final snapshot (what it kept is what its AOF or RDB
already held), PostgreSQL leaves its data directory to crash recovery, and the sample
app's supervisor dies with its app, so nothing brings it back. Each fault waits until
the server no longer answers (and, for PostgreSQL, until its backends are gone, so that
a restart does not find its old shared memory still in use). There is no reset: a fix
(a restart) is what ends a crash, and teardown stops whatever runs.

Only servers on this host are crashed, and only the process that really serves the
port (Redis says its pid; PostgreSQL's data directory names its postmaster; the local
environment knows the app's supervisor), checked against /proc before the signal.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from opsgraph.tools.connections import redis_client
from opsgraph.tools.environments.liveness import answers
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.postgres_tools import connect
from opsgraph.tools.spec import ToolContext, ToolError

_GONE_TIMEOUT_S = 20.0
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _on_this_host(resource: Resource) -> None:
    if resource.connection.host not in _LOCAL_HOSTS:
        raise ToolError(f"{resource.name} is at {resource.connection.host}: only a server on this host can be crashed")


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _gone(pid: int) -> bool:
    """Dead and reaped: a zombie still holds its pid, and a server's lock files name it (PostgreSQL
    refuses to start while the pid they name exists). A zombie of ours is reaped here; another's
    is left to its parent (init, for a daemon)."""
    if not Path(f"/proc/{pid}").exists():
        return True
    if _alive(pid):
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return not Path(f"/proc/{pid}").exists()


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append(int(status.parent.name))
        except OSError:
            continue  # exited while we looked
    return found


def _kill(pids: list[int], resource: Resource, what: str) -> None:
    """SIGKILL every pid, then wait until they are gone and the server no longer answers."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + _GONE_TIMEOUT_S
    while not all(_gone(pid) for pid in pids) or answers(resource):
        if time.monotonic() > deadline:
            raise ToolError(f"{resource.name} ({what}) still runs {_GONE_TIMEOUT_S:.0f} s after SIGKILL")
        time.sleep(0.05)


def crash_redis(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """SIGKILL the redis-server that answers on the resource's port."""
    _on_this_host(resource)
    client = redis_client(resource, timeout_s=5.0)
    try:
        server = client.info("server")
        persistence = client.info("persistence")
        keys = int(client.dbsize())
    finally:
        client.close()
    pid = int(server["process_id"])
    if b"redis-server" not in _command_line(pid):
        raise ToolError(f"{resource.name} says its pid is {pid}, which is not a redis-server on this host")
    _kill([pid], resource, f"redis-server pid {pid}")
    return {"killed_pid": pid, "keys_before": keys, "aof_enabled": bool(int(persistence["aof_enabled"]))}


def crash_postgres(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """SIGKILL the postmaster named by the server's own data directory, then wait for its backends to go."""
    _on_this_host(resource)
    with connect(resource) as conn:
        row = conn.execute("SELECT current_setting('data_directory') AS data_directory").fetchone()
    assert row is not None
    pid_file = Path(row["data_directory"]) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, IndexError, ValueError) as error:
        raise ToolError(f"cannot read the postmaster's pid from {pid_file}: {error}") from None
    if b"postgres" not in _command_line(pid):
        raise ToolError(f"{pid_file} names pid {pid}, which is not a postgres process on this host")
    backends = _children(pid)
    _kill([pid], resource, f"postmaster pid {pid}")
    deadline = time.monotonic() + _GONE_TIMEOUT_S
    while not all(_gone(child) for child in backends):  # they notice the postmaster's death and exit
        if time.monotonic() > deadline:
            raise ToolError(f"the backends of {resource.name} outlived their postmaster by {_GONE_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return {"killed_pid": pid, "backends_gone": len(backends), "data_directory": row["data_directory"]}


def crash_app(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """SIGKILL a local app's supervisor and the app under it: it is down until something starts it again."""
    if resource.environment is not Environment.LOCAL:
        raise ToolError(f"{resource.name} runs in the {resource.environment} environment; only a local app is crashed")
    [status] = [s for s in LocalStack(ctx.state_dir, ctx.inventory).status() if s.name == resource.name]
    if status.pid is None:
        raise ToolError(f"{resource.name} is not running")
    pids = [status.pid, *_children(status.pid)]
    _kill(pids, resource, f"supervisor pid {status.pid}")
    return {"killed_pids": pids}


SCENARIOS = [
    Scenario(
        name="redis-crash",
        target_kind=ResourceKind.REDIS,
        description="SIGKILL the redis-server on this host: it is down, with only what it had persisted",
        inject=crash_redis,
    ),
    Scenario(
        name="postgres-crash",
        target_kind=ResourceKind.POSTGRES,
        description="SIGKILL the postmaster on this host: PostgreSQL is down until restarted (crash recovery then)",
        inject=crash_postgres,
    ),
    Scenario(
        name="app-crash",
        target_kind=ResourceKind.HTTP,
        description="SIGKILL a local app and its supervisor: it is down, and whatever proxies to it answers 502",
        inject=crash_app,
    ),
]
