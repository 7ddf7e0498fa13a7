"""Nginx faults: connection overload is real connections held open by a detached, slow client.

The CLI exits right after `inject`, so the connections are held by a separate process
(`nginx_holder`), whose state file (pid, target, expiry) lives in the state folder under
``faults/``. `stop_connection_holder` is the reset; the holder also leaves by itself
when its lifetime (10 min) is up, when nginx has been gone for a while (`opsgraph down`)
or when its state file disappears (the state folder was deleted).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from opsgraph.tools.environments.local.process import tail_lines
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.nginx_tools import STATUS_PATH, local_nginx, parse_capacity, read_stub_status
from opsgraph.tools.spec import ToolContext, ToolError

# Of nginx's capacity: above the default failed band (95 %), and still a few slots short of
# full, so that the probe and the tools that diagnose the fault can get in.
OVERLOAD_PCT = 96.0
HOLDER_LIFETIME_S = 600.0
_READY_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0
# By name, not imported: `python -m` of a module its package already imported runs a second copy.
HOLDER_MODULE = "opsgraph.tools.faults.nginx_holder"


def holder_state_file(resource: Resource, ctx: ToolContext) -> Path:
    return ctx.state_dir.resolve() / "faults" / f"{resource.name}.connection-holder.json"


def _holder_running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) connection holder, not a process that reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z" and HOLDER_MODULE.encode() in command


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _holder_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_connection_holder(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """The reset: stop the resource's connection holder, if one runs (SIGTERM, then SIGKILL)."""
    state_file = holder_state_file(resource, ctx)
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
            if _wait_gone(pid, _STOP_TIMEOUT_S):
                break
        stopped = pid
    state_file.unlink(missing_ok=True)
    return {"stopped": stopped}


def overload_connections(
    resource: Resource, ctx: ToolContext, target_pct: float = OVERLOAD_PCT, lifetime_s: float = HOLDER_LIFETIME_S
) -> dict[str, Any]:
    """Hold open enough connections (slow requests) that active connections reach ``target_pct`` of capacity."""
    nginx = local_nginx(ctx, resource)  # capacity comes from its config: local resources only
    capacity = parse_capacity(nginx.config_path.read_text()).connections
    stop_connection_holder(resource, ctx)  # one holder per resource
    target = math.ceil(capacity * target_pct / 100)
    count = target - read_stub_status(resource).active  # that count includes our own request, as a probe's will
    if count < 1:  # the holder refuses more than its own bound (MAX_CONNECTIONS) and says so in its log
        raise ToolError(f"{resource.name} already has {target} active connections or more; nothing started")
    state_file = holder_state_file(resource, ctx)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log_path = state_file.with_suffix(".log")
    command = [
        sys.executable, "-m", HOLDER_MODULE,
        "--host", resource.connection.host,
        "--port", str(resource.connection.port),
        "--path", STATUS_PATH,
        "--count", str(count),
        "--lifetime", str(lifetime_s),
        "--state-file", str(state_file),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        holder = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    active = _wait_for_active(resource, target, holder)
    if active is None:
        stop_connection_holder(resource, ctx)
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        excerpt = "\n".join(tail_lines(log_path, 10))
        raise ToolError(f"the holder did not bring {resource.name} to {target} active connections; its log:\n{excerpt}")
    return {
        "connections_held": count,
        "capacity": capacity,
        "active_connections": active,
        "used_pct": round(100 * active / capacity, 1),
        "holder_pid": holder.pid,
        "lifetime_s": lifetime_s,
        "state_file": str(state_file),
    }


def _wait_for_active(resource: Resource, target: int, holder: subprocess.Popen[bytes]) -> int | None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline and holder.poll() is None:
        try:
            active = read_stub_status(resource).active
        except (httpx.HTTPError, ValueError):
            active = 0
        if active >= target:
            return active
        time.sleep(0.1)
    return None


SCENARIOS = [
    Scenario(
        name="nginx-connection-overload",
        target_kind=ResourceKind.NGINX,
        description=(
            f"hold {OVERLOAD_PCT:g} % of nginx's connection capacity open with a detached slow client "
            f"(exits after {HOLDER_LIFETIME_S / 60:.0f} min)"
        ),
        inject=overload_connections,
        reset=stop_connection_holder,
    ),
]
