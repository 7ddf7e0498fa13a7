"""Nginx tools: stub_status, the live config, `nginx -t` before every reload, restarts.

Reading works for any nginx that serves `/nginx_status`; changing the config needs the
config file, so those tools act on `environment: local` resources, found through the
local environment's state folder (`local_nginx`, the one lookup). Every config change is
tested with `nginx -t` and applied by a graceful reload (SIGHUP); a change that fails
either is rolled back, so the running nginx keeps serving with its previous config.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from pydantic import Field

from opsgraph.tools.environments.local.nginx_server import (
    WORKER_PID_HEADER,
    WORKER_SHUTDOWN_TIMEOUT_S,
    LocalNginx,
    RuntimeOverride,
)
from opsgraph.tools.environments.local.process import LocalStackError, tail_lines
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec

STATUS_PATH = "/nginx_status"
# 5xx rate: requests of the last ERROR_WINDOW_S seconds in the access log (at most
# MAX_LOG_LINES of them), graded only from MIN_REQUESTS on — 1 error in 2 is not a rate.
ERROR_WINDOW_S = 30.0
MAX_LOG_LINES = 5000
MIN_REQUESTS = 10

# ---- stub_status


@dataclass(frozen=True)
class StubStatus:
    """nginx's own counters: connections now, and accepted / handled / requests since start."""

    active: int
    accepts: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int
    worker_pid: int | None  # the worker that answered (local nginx only)

    @property
    def dropped(self) -> int:
        """Connections accepted but closed at once for lack of worker_connections."""
        return self.accepts - self.handled


_STUB = re.compile(
    r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+"
    r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


def read_stub_status(resource: Resource, timeout_s: float = 3.0) -> StubStatus:
    """GET /nginx_status; raises httpx.HTTPError if nginx does not answer, ValueError if it is not stub_status."""
    url = f"http://{resource.connection.host}:{resource.connection.port}{STATUS_PATH}"
    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    match = _STUB.search(response.text)
    if match is None:
        raise ValueError(f"{url} did not return nginx stub_status output")
    pid = response.headers.get(WORKER_PID_HEADER, "")
    active, accepts, handled, requests, reading, writing, waiting = (int(value) for value in match.groups())
    return StubStatus(
        active, accepts, handled, requests, reading, writing, waiting, int(pid) if pid.isdigit() else None
    )


# ---- the config


@dataclass(frozen=True)
class Capacity:
    worker_connections: int
    worker_processes: int

    @property
    def connections(self) -> int:
        """How many connections nginx can hold at once (a proxied request takes two)."""
        return self.worker_connections * self.worker_processes


_WORKER_CONNECTIONS = re.compile(r"^(\s*worker_connections\s+)(\d+)(\s*;)", re.MULTILINE)
_WORKER_PROCESSES = re.compile(r"^\s*worker_processes\s+(\d+|auto)\s*;", re.MULTILINE)


def parse_capacity(config: str) -> Capacity:
    """worker_connections and worker_processes of a config (nginx's defaults when absent)."""
    connections = _WORKER_CONNECTIONS.findall(config)
    if len(connections) > 1:
        raise ValueError("the config sets worker_connections more than once")
    processes = _WORKER_PROCESSES.search(config)
    if processes is None:
        workers = 1
    elif processes[1] == "auto":
        workers = os.cpu_count() or 1  # what nginx does on this same host
    else:
        workers = int(processes[1])
    return Capacity(int(connections[0][1]) if connections else 512, workers)


def with_worker_connections(config: str, value: int) -> str:
    """The config with worker_connections set to ``value``; everything else byte for byte."""
    changed, count = _WORKER_CONNECTIONS.subn(rf"\g<1>{value}\g<3>", config)
    if count != 1:
        raise ToolError(f"expected one worker_connections directive in the config, found {count}")
    return changed


# ---- the access log (the `opsgraph` log format of the local environment)

_MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_ACCESS = re.compile(
    r'\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\] "[^"]*" (\d{3}) \S+'
    r'(?: "[^"]*" "[^"]*" "[^"]*" "([^"]*)")?'
)


def _logged_at(match: re.Match[str]) -> float:
    """$time_local as epoch seconds; month names by table, since %b follows the locale."""
    day, month, year, hour, minute, second, sign, offset_h, offset_m = match.groups()[:9]
    fields = (int(year), _MONTHS.get(month, 1), int(day), int(hour), int(minute), int(second))
    offset = (int(offset_h) * 3600 + int(offset_m) * 60) * (1 if sign == "+" else -1)
    return calendar.timegm(fields) - offset


def _upstream_answered(bytes_received: str | None) -> bool:
    """Whether the (last) upstream sent a response: "$upstream_bytes_received" lists one value
    per upstream tried ("0, 4210"); 0 means nginx got nothing and made the answer itself."""
    last = re.split("[,:]", bytes_received or "-")[-1].strip()
    return last.isdigit() and int(last) > 0


@dataclass(frozen=True)
class RecentRequests:
    """What the access log says about the last ``window_s`` seconds.

    A 5xx is *relayed* when the upstream answered it (the app failed: its own incident)
    and *nginx-made* otherwise (upstream unreachable or timed out, nginx's own error).
    Only nginx-made ones are graded: grading relayed ones would open a second incident,
    on nginx, for every fault of the app behind it.
    """

    window_s: float
    total: int
    errors_5xx: int
    relayed_5xx: int
    by_status: dict[str, int]

    @property
    def nginx_5xx(self) -> int:
        return self.errors_5xx - self.relayed_5xx

    @property
    def error_rate_pct(self) -> float | None:
        """The share of nginx-made 5xx, or None below MIN_REQUESTS requests."""
        return 100.0 * self.nginx_5xx / self.total if self.total >= MIN_REQUESTS else None


def recent_requests(access_log: Path, window_s: float = ERROR_WINDOW_S) -> RecentRequests:
    """Requests and 5xx answers of the last ``window_s`` seconds (of the last MAX_LOG_LINES lines).

    Real traffic rather than requests of our own: a probe that asked nginx itself would
    measure its own few requests and miss what users get.
    """
    since = time.time() - window_s
    statuses: Counter[str] = Counter()
    relayed = 0
    for line in tail_lines(access_log, MAX_LOG_LINES):
        match = _ACCESS.search(line)
        if match is None or _logged_at(match) < since:
            continue
        status = match[10]
        statuses[status] += 1
        relayed += status.startswith("5") and _upstream_answered(match[11])
    errors = sum(count for status, count in statuses.items() if status.startswith("5"))
    return RecentRequests(window_s, sum(statuses.values()), errors, relayed, dict(sorted(statuses.items())))


# ---- finding the nginx of a resource


def local_nginx(ctx: ToolContext, resource: Resource) -> LocalNginx:
    """The one lookup for tools: a local resource's nginx, through the local environment's state folder."""
    if resource.environment is not Environment.LOCAL:
        raise ToolError(
            f"{resource.name} runs in the {resource.environment} environment; its nginx.conf is only "
            "reachable for local resources"
        )
    nginx = LocalNginx.of(ctx.state_dir, resource.name)
    if not nginx.config_path.exists():
        raise ToolError(f"{resource.name} has no nginx.conf in {nginx.folder}: start it with `opsgraph up`")
    return nginx


def serving_nginx(resource: Resource, status: StubStatus) -> LocalNginx | None:
    """For the probe (which has no state folder): the local nginx that just answered, if it is one."""
    if resource.environment is not Environment.LOCAL or status.worker_pid is None:
        return None
    return LocalNginx.serving(status.worker_pid)


def _running_master(nginx: LocalNginx, resource: Resource) -> int:
    master = nginx.master_pid()
    if master is None:
        raise ToolError(f"nginx of {resource.name} is not running (no live pid in {nginx.pid_path}); restart it")
    return master


# ---- tools


class NginxInfoArgs(ToolArgs):
    log_lines: Annotated[int, Field(ge=0, le=200, description="How many recent error-log lines (warn and above)")] = 20


_NOTABLE = ("[warn]", "[error]", "[crit]", "[alert]", "[emerg]")
EXHAUSTED = "worker_connections are not enough"


def _upstream_check(ctx: ToolContext, resource: Resource) -> dict[str, Any] | None:
    """Ask the upstream's health endpoint directly, bypassing nginx: is the fault behind it?"""
    if resource.local.upstream is None:
        return None
    upstream = ctx.resource(resource.local.upstream)
    url = f"http://{upstream.connection.host}:{upstream.connection.port}{upstream.http.health_path}"
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as error:
        return {"resource": upstream.name, "url": url, "reachable": False, "error": f"{type(error).__name__}: {error}"}
    return {
        "resource": upstream.name,
        "url": url,
        "reachable": True,
        "status_code": response.status_code,
        "body": response.text[:300],
    }


def nginx_info(args: NginxInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """stub_status, capacity from the live config, recent 5xx, error-log excerpt, upstream health (read-only).

    Answers even when nginx is down (the error log says why), so it serves every diagnosis.
    """
    resource = ctx.resource(args.resource)
    info: dict[str, Any] = {}
    status: StubStatus | None
    try:
        status = read_stub_status(resource)
        info["reachable"] = True
        info["status"] = {key: value for key, value in asdict(status).items() if key != "worker_pid"}
        info["status"]["dropped"] = status.dropped
    except (httpx.HTTPError, ValueError) as error:
        status = None
        info["reachable"] = False
        info["status_error"] = f"{type(error).__name__}: {error}"
    if resource.environment is Environment.LOCAL:
        nginx = local_nginx(ctx, resource)
        capacity = parse_capacity(nginx.config_path.read_text())
        info["worker_connections"] = capacity.worker_connections
        info["worker_processes"] = capacity.worker_processes
        info["capacity"] = capacity.connections
        info["connections_used_pct"] = round(100 * status.active / capacity.connections, 1) if status else None
        recent = recent_requests(nginx.access_log)
        info["recent_requests"] = {
            **asdict(recent),
            "nginx_5xx": recent.nginx_5xx,
            "error_rate_pct": recent.error_rate_pct,
        }
        notable = [line for line in nginx.error_log_tail(500) if any(level in line for level in _NOTABLE)]
        info["worker_connections_exhausted"] = sum(EXHAUSTED in line for line in notable)
        info["error_log"] = notable[-args.log_lines :] if args.log_lines else []
        override = nginx.override()
        info["runtime_override"] = override.model_dump() if override else None
    else:
        info["capacity"] = None
        info["note"] = "config, logs and capacity are read for local resources only"
    info["upstream"] = _upstream_check(ctx, resource)
    return info


def _write(path: Path, text: str) -> None:
    """Replace a file in one step: nginx never reads half a config."""
    staging = path.with_name(path.name + ".new")
    staging.write_text(text)
    staging.replace(path)


def _apply_config(nginx: LocalNginx, config: str) -> str:
    """Back up, write, `nginx -t`, reload; on any failure restore the backup. Returns -t's output.

    If `nginx -t` fails, the running nginx never saw the change: restoring the file is the
    whole rollback. If the reload fails (a port nginx cannot bind passes -t), nginx keeps its
    old workers; the backup is restored and reloaded so that file and process agree again.
    """
    previous = nginx.config_path.read_text()
    nginx.backup_path.write_text(previous)
    _write(nginx.config_path, config)
    test = nginx.test_config()
    if not test.ok:
        _write(nginx.config_path, previous)
        raise ToolError(
            f"nginx -t rejected the change; config restored, nginx still runs the previous one: {test.output}"
        )
    try:
        nginx.reload()
    except LocalStackError as error:
        _write(nginx.config_path, previous)
        try:
            nginx.reload()
        except LocalStackError as again:
            raise ToolError(f"{error}; config restored, but reloading it failed too: {again}") from None
        raise ToolError(f"{error}; config restored and reloaded") from None
    return test.output


def nginx_reload(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Graceful reload (SIGHUP) after `nginx -t`: new workers take the config on disk, in-flight requests finish."""
    resource = ctx.resource(args.resource)
    nginx = local_nginx(ctx, resource)
    _running_master(nginx, resource)
    test = nginx.test_config()
    if not test.ok:
        raise ToolError(f"nginx -t failed, not reloading (nginx keeps running its current config): {test.output}")
    try:
        workers = nginx.reload()
    except LocalStackError as error:
        raise ToolError(str(error)) from None
    return {"reloaded": True, "workers": sorted(workers), "nginx_t": test.output}


def nginx_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Stop and start nginx through its environment: every connection drops."""
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


class NginxScaleConnectionsArgs(ToolArgs):
    worker_connections: Annotated[int, Field(ge=16, description="New worker_connections (per worker process)")]


def _connections_ceiling(args: NginxScaleConnectionsArgs, resource: Resource) -> str | None:
    ceiling = resource.policy.max_worker_connections
    if args.worker_connections > ceiling:
        return f"worker_connections {args.worker_connections} is above this resource's policy ceiling of {ceiling}"
    return None


def nginx_scale_connections(args: NginxScaleConnectionsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set worker_connections in the live config and reload; kept across local restarts.

    Refuses to go at or below the connections open now (that would make pressure worse).
    """
    resource = ctx.resource(args.resource)
    if problem := _connections_ceiling(args, resource):
        raise ToolError(problem)
    nginx = local_nginx(ctx, resource)
    _running_master(nginx, resource)
    config = nginx.config_path.read_text()
    current = parse_capacity(config)
    active = read_stub_status(resource).active
    capacity = args.worker_connections * current.worker_processes
    if capacity <= active:
        raise ToolError(
            f"worker_connections {args.worker_connections} x {current.worker_processes} workers = {capacity} is not "
            f"above the {active} connections open now; refusing to make pressure worse"
        )
    nginx_t = "unchanged"
    if args.worker_connections != current.worker_connections:
        nginx_t = _apply_config(nginx, with_worker_connections(config, args.worker_connections))
    baseline = resource.local.worker_connections
    kept = args.worker_connections != baseline
    nginx.record_override(
        RuntimeOverride(
            worker_connections=args.worker_connections,
            inventory_worker_connections=baseline,
            set_by="nginx_scale_connections",
            set_at=time.time(),
        )
        if kept
        else None
    )
    return {
        "previous_worker_connections": current.worker_connections,
        "worker_connections": args.worker_connections,
        "worker_processes": current.worker_processes,
        "capacity": capacity,
        "active_connections": active,
        "kept_across_restarts": kept,
        "nginx_t": nginx_t,
    }


def nginx_clear_connections(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Drop lingering connections: graceful reload, then wait until the old workers are gone.

    nginx has no command to close connections; a reload is the real mechanism. Old workers
    close idle keep-alive connections at once, finish in-flight requests, and are cut off
    after worker_shutdown_timeout; new workers start with none. Clients that still want a
    connection open a new one: if the count climbs back, the load is real (scale instead).
    """
    resource = ctx.resource(args.resource)
    nginx = local_nginx(ctx, resource)
    master = _running_master(nginx, resource)
    before = read_stub_status(resource)
    test = nginx.test_config()
    if not test.ok:
        raise ToolError(f"nginx -t failed, not reloading (nginx keeps running its current config): {test.output}")
    old_workers = nginx.worker_pids(master)
    try:
        nginx.reload()
    except LocalStackError as error:
        raise ToolError(str(error)) from None
    lingering = nginx.wait_for_exit(old_workers, WORKER_SHUTDOWN_TIMEOUT_S + 1)
    after = read_stub_status(resource)
    return {
        "active_before": before.active,
        "waiting_before": before.waiting,
        "active_after": after.active,
        "closed": max(0, before.active - after.active),
        "old_workers_still_running": sorted(lingering),
    }


TOOLS: list[ToolSpec[Any]] = [
    ToolSpec(
        name="nginx_info",
        description=(
            "Read nginx stub_status (active, reading, writing, waiting, dropped), worker_connections and "
            "capacity, recent 5xx, error-log lines and the upstream's health."
        ),
        args_model=NginxInfoArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.READ,
        run=nginx_info,
        idempotent=True,
    ),
    ToolSpec(
        name="nginx_reload",
        description="Test the config with nginx -t, then reload gracefully; refuses if the test fails.",
        args_model=ToolArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.SAFE,
        run=nginx_reload,
        idempotent=True,
        environment=Environment.LOCAL,
    ),
    ToolSpec(
        name="nginx_restart",
        description="Restart nginx through its environment; every open connection drops.",
        args_model=ToolArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.DISRUPTIVE,
        run=nginx_restart,
        idempotent=False,
    ),
    ToolSpec(
        name="nginx_scale_connections",
        description=(
            "Set nginx worker_connections (tested with nginx -t, reloaded, rolled back on failure) so that "
            "more clients fit; kept across local restarts."
        ),
        args_model=NginxScaleConnectionsArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.DISRUPTIVE,
        run=nginx_scale_connections,
        idempotent=True,
        undo="nginx_scale_connections with worker_connections = previous_worker_connections from the result",
        check_limits=_connections_ceiling,
        environment=Environment.LOCAL,
    ),
    ToolSpec(
        name="nginx_clear_connections",
        description=(
            "Drop idle keep-alive and lingering connections by a graceful reload (old workers close them); "
            "clients that still need one reconnect."
        ),
        args_model=ToolArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.DISRUPTIVE,
        run=nginx_clear_connections,
        idempotent=True,
        environment=Environment.LOCAL,
    ),
]
