"""Faults made of sessions a leaking worker holds: Redis clients left idle, PostgreSQL slots taken.

The sessions are held by a detached `session_holder` process (they must outlive
`opsgraph inject`), one per resource and fault, whose state file, plan and log live in
the state folder under ``faults/``; `stop_holder` is the reset. Each fault sizes itself
from the server it hits (maxclients, max_connections and the reserved slots), so the
same fault fills a small server and a large one alike:

- ``redis-idle-clients``: idle connections take every client slot but one, and stay idle
  past the age below which OpsGraph takes a client for a live one (`MIN_IDLE_FLOOR_S`):
  a leak is old by the time anyone looks.
- ``postgres-idle-leak``: idle sessions of an ordinary role take every ordinary slot;
  only the superusers' reserved ones are left.
- ``postgres-long-queries``: the same slots, each held by a long query, injected once
  they have run for LONG_RUNNING_S.

The Redis connections do not log in: a Redis that asks for a password refuses them, and
the fault fails with Redis's own answer. PostgreSQL sessions log in as a role of the
fault's own (an ordinary role with a fresh random password, created through OpsGraph's
connection, dropped by the reset): an application never holds superuser sessions, and
OpsGraph never terminates those.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg import sql

from opsgraph.tools.connections import redis_client
from opsgraph.tools.environments.local.process import tail_lines
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.faults.session_holder import HoldPlan
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools import connect
from opsgraph.tools.redis_tools import MIN_IDLE_FLOOR_S
from opsgraph.tools.spec import ToolContext, ToolError

HOLDER_LIFETIME_S = 600.0
# Older than any "long query" threshold OpsGraph's runbooks use by default (5 s).
LONG_RUNNING_S = 6.0
_READY_TIMEOUT_S = 30.0
_AGE_TIMEOUT_S = MIN_IDLE_FLOOR_S + 20.0
_STOP_TIMEOUT_S = 5.0
_PASSWORD_ENV = "OPSGRAPH_FAULT_SESSION_PASSWORD"
# By name, not imported: `python -m` of a module its package already imported runs a second copy.
HOLDER_MODULE = "opsgraph.tools.faults.session_holder"

# Who each leak looks like: the client name / application_name, and the role.
REDIS_LEAKER = "report-worker"
IDLE_LEAKER, IDLE_ROLE = "report-worker", "report_app"
SLEEPER, SLEEPER_ROLE = "nightly-export", "export_app"

# Holders this process started, reaped when they are stopped (no zombie outlives a reset).
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


def _files(resource: Resource, ctx: ToolContext, fault: str) -> tuple[Path, Path, Path]:
    folder = ctx.state_dir.resolve() / "faults"
    stem = f"{resource.name}.{fault}"
    return folder / f"{stem}.json", folder / f"{stem}.plan.json", folder / f"{stem}.log"


def _holder_running(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) session holder, not a process that reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z" and HOLDER_MODULE.encode() in command


def _reap(pid: int) -> None:
    spawned = _SPAWNED.pop(pid, None)
    if spawned is not None:
        spawned.wait(timeout=_STOP_TIMEOUT_S)


def stop_holder(resource: Resource, ctx: ToolContext, fault: str) -> dict[str, Any]:
    """Stop the holder of `fault` on `resource`, if one runs (SIGTERM, then SIGKILL)."""
    state_file, plan_file, _ = _files(resource, ctx, fault)
    try:
        pid = int(json.loads(state_file.read_text())["pid"])
    except FileNotFoundError:
        return {"stopped": None}
    except (ValueError, KeyError, TypeError) as error:
        raise ToolError(f"{state_file} is unreadable ({error}); delete it and stop the holder by hand") from None
    stopped = None
    if _holder_running(pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            os.kill(pid, sig)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while _holder_running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _holder_running(pid):
                break
        stopped = pid
    _reap(pid)
    state_file.unlink(missing_ok=True)
    plan_file.unlink(missing_ok=True)
    return {"stopped": stopped}


def start_holder(
    resource: Resource, ctx: ToolContext, fault: str, *, password: str | None = None, **plan: Any
) -> dict[str, Any]:
    """Start a holder with `plan` (HoldPlan fields) and wait until every session is open."""
    stop_holder(resource, ctx, fault)  # one holder per resource and fault
    state_file, plan_file, log_path = _files(resource, ctx, fault)
    hold = HoldPlan(
        host=resource.connection.host,
        port=resource.connection.port,
        lifetime_s=HOLDER_LIFETIME_S,
        state_file=state_file,
        password_env=_PASSWORD_ENV if password is not None else None,
        **plan,
    )
    state_file.parent.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(hold.to_json())
    environment = {**os.environ, **({_PASSWORD_ENV: password} if password is not None else {})}
    with log_path.open("ab") as log:
        holder = subprocess.Popen(
            [sys.executable, "-m", HOLDER_MODULE, "--plan", str(plan_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    _SPAWNED[holder.pid] = holder
    state = _wait_ready(state_file, holder)
    if state.get("status") != "ready":
        stop_holder(resource, ctx, fault)
        if holder.poll() is None:
            holder.kill()
        _reap(holder.pid)
        state_file.unlink(missing_ok=True)
        excerpt = "\n".join(tail_lines(log_path, 10))
        why = state.get("error") or "it did not get ready"
        raise ToolError(f"the session holder for {resource.name} failed: {why}; its log:\n{excerpt}")
    return {"holder_pid": holder.pid, "sessions": hold.count, "as": hold.name, "state_file": str(state_file)}


def _wait_ready(state_file: Path, holder: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            state: dict[str, Any] = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        if state.get("status") in ("ready", "error"):
            return state
        if holder.poll() is not None:
            return {"error": f"it exited with status {holder.returncode}"}
        time.sleep(0.05)
    return {}


# ---- Redis


def _fill_clients(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Idle connections up to every client slot but one, aged past MIN_IDLE_FLOOR_S."""
    client = redis_client(resource, timeout_s=5.0)
    try:
        maxclients = int(client.config_get("maxclients")["maxclients"] or 0)
        connected = int(client.info("clients")["connected_clients"])  # this client included
        count = maxclients - connected  # once this client has gone, one slot is left
        if count < 1:
            raise ToolError(f"{resource.name} already has {connected} of maxclients {maxclients}; nothing started")
        held = start_holder(resource, ctx, "redis-idle-clients", kind="redis", mode="idle", count=count,
                            name=REDIS_LEAKER)  # fmt: skip
        deadline = time.monotonic() + _AGE_TIMEOUT_S
        while True:
            idle = [int(c["idle"]) for c in client.client_list() if c.get("name") == REDIS_LEAKER]
            if len(idle) == count and min(idle) >= MIN_IDLE_FLOOR_S:
                break
            if time.monotonic() > deadline:
                stop_holder(resource, ctx, "redis-idle-clients")
                raise ToolError(f"the {count} leaked connections to {resource.name} did not stay open and idle")
            time.sleep(0.2)
    finally:
        client.close()
    return {**held, "maxclients": maxclients, "clients_before": connected - 1, "idle_s": min(idle)}


def _stop_redis_holder(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    return stop_holder(resource, ctx, "redis-idle-clients")


# ---- PostgreSQL


def _slots(resource: Resource) -> dict[str, int]:
    """Ordinary slots, and the client sessions using them now (this one left out)."""
    with connect(resource) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) AS clients,"
            " current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true)::int, 0) AS usable"
            " FROM pg_stat_activity"
        ).fetchone()
    assert row is not None  # an aggregate always returns one row
    return {"clients": int(row["clients"]), "usable": int(row["usable"])}


def _fault_role(resource: Resource, role: str) -> str:
    """An ordinary login role for the fault's sessions, with a fresh random password; returns the password."""
    password = secrets.token_urlsafe(18)
    with connect(resource) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        conn.execute(
            sql.SQL("{} {} LOGIN NOSUPERUSER PASSWORD {}").format(verb, sql.Identifier(role), sql.Literal(password))
        )
    return password


def _drop_fault_role(resource: Resource, role: str) -> int:
    """End the role's sessions that are left and drop it; returns how many sessions were ended."""
    with connect(resource) as conn:
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid, 3000)) AS ended FROM pg_stat_activity WHERE usename = %s", (role,)
        ).fetchone()
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    return int(ended["ended"]) if ended else 0


def _take_slots(resource: Resource, ctx: ToolContext, fault: str, role: str, name: str, mode: str) -> dict[str, Any]:
    slots = _slots(resource)
    count = slots["usable"] - slots["clients"]
    if count < 1:
        raise ToolError(f"{resource.name} has no ordinary slot free ({slots}); nothing started")
    password = _fault_role(resource, role)
    database = resource.connection.database or "postgres"
    try:
        held = start_holder(resource, ctx, fault, password=password, kind="postgres", mode=mode, count=count,
                            name=name, user=role, dbname=database)  # fmt: skip
    except ToolError:
        _drop_fault_role(resource, role)
        raise
    return {**held, "role": role, "ordinary_slots": slots["usable"], "clients_before": slots["clients"]}


def _wait_long(resource: Resource, role: str, count: int) -> float:
    """Until all `count` queries of `role` have run LONG_RUNNING_S; returns the youngest one's age."""
    deadline = time.monotonic() + LONG_RUNNING_S + 20
    while True:
        with connect(resource) as conn:
            row = conn.execute(
                "SELECT count(*) AS running, coalesce(min(extract(epoch FROM now() - query_start)), 0)::float8 AS age"
                " FROM pg_stat_activity WHERE usename = %s AND state = 'active'",
                (role,),
            ).fetchone()
        assert row is not None
        if int(row["running"]) == count and float(row["age"]) >= LONG_RUNNING_S:
            return round(float(row["age"]), 1)
        if time.monotonic() > deadline:
            raise ToolError(f"the {count} long queries on {resource.name} did not keep running ({dict(row)})")
        time.sleep(0.2)


def _idle_leak(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    return _take_slots(resource, ctx, "postgres-idle-leak", IDLE_ROLE, IDLE_LEAKER, "idle")


def _long_queries(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    held = _take_slots(resource, ctx, "postgres-long-queries", SLEEPER_ROLE, SLEEPER, "sleep")
    try:
        age = _wait_long(resource, SLEEPER_ROLE, held["sessions"])
    except ToolError:
        _reset_long_queries(resource, ctx)
        raise
    return {**held, "running_for_s": age}


def _reset_idle_leak(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    stopped = stop_holder(resource, ctx, "postgres-idle-leak")
    return {**stopped, "sessions_ended": _drop_fault_role(resource, IDLE_ROLE)}


def _reset_long_queries(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    stopped = stop_holder(resource, ctx, "postgres-long-queries")
    return {**stopped, "sessions_ended": _drop_fault_role(resource, SLEEPER_ROLE)}


SCENARIOS = [
    Scenario(
        name="redis-idle-clients",
        target_kind=ResourceKind.REDIS,
        description=(
            f"a detached worker leaks idle connections until one client slot is left, idle for {MIN_IDLE_FLOOR_S} s "
            f"(exits after {HOLDER_LIFETIME_S / 60:.0f} min)"
        ),
        inject=_fill_clients,
        reset=_stop_redis_holder,
    ),
    Scenario(
        name="postgres-idle-leak",
        target_kind=ResourceKind.POSTGRES,
        description="a detached worker's idle sessions (an ordinary role) take every ordinary connection slot",
        inject=_idle_leak,
        reset=_reset_idle_leak,
    ),
    Scenario(
        name="postgres-long-queries",
        target_kind=ResourceKind.POSTGRES,
        description=(
            f"a detached worker's long queries (an ordinary role) take every ordinary connection slot, "
            f"injected once they have run {LONG_RUNNING_S:g} s"
        ),
        inject=_long_queries,
        reset=_reset_long_queries,
    ),
]
