"""nginx_info: everything read-only about one nginx, for diagnosis.

It reads what the resource's environment makes reachable: for a local nginx its state
folder (config, error and access logs, runtime override); for an external one its
declared paths (config file, error log, pid file); elsewhere stub_status only.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any

import httpx
from pydantic import Field

from opsgraph.tools.environments.local.nginx_server import LocalNginx
from opsgraph.tools.environments.nginx_control import NginxControl, process_age_s
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.nginx_tools.config import parse_capacity, parse_shutdown_timeout
from opsgraph.tools.nginx_tools.status import (
    StubStatus,
    closed_without_answer,
    config_test,
    established_connections,
    external_nginx,
    last_clear,
    local_nginx,
    read_stub_status,
    recent_requests,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, declare


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


def _status(resource: Resource) -> tuple[StubStatus | None, dict[str, Any]]:
    """stub_status, or why it is unreadable: a full nginx (accepts, then closes) is told apart from a missing one."""
    try:
        status = read_stub_status(resource)
    except (httpx.HTTPError, ValueError) as error:
        saturated = isinstance(error, httpx.HTTPError) and closed_without_answer(error)
        return None, {"reachable": False, "saturated": saturated, "status_error": f"{type(error).__name__}: {error}"}
    shown = {key: value for key, value in asdict(status).items() if key != "worker_pid"}
    return status, {"reachable": True, "saturated": False, "status": {**shown, "dropped": status.dropped}}


def _processes(nginx: NginxControl) -> dict[str, Any]:
    """The master and its workers, with their ages: workers much younger than their master were reloaded."""
    master = nginx.master_pid()
    if master is None:
        return {"master_pid": None, "workers": []}
    workers = sorted(nginx.worker_pids(master))
    ages = [age for pid in workers if (age := process_age_s(pid)) is not None]
    master_age = process_age_s(master)
    return {
        "master_pid": master,
        "workers": workers,
        "master_age_s": round(master_age, 1) if master_age is not None else None,
        "youngest_worker_age_s": round(min(ages), 1) if ages else None,
    }


def _from_config(nginx: NginxControl, info: dict[str, Any], active: int | None, log_lines: int) -> None:
    """What the config file, the error log and the processes say (local and external nginx)."""
    text = nginx.config_path.read_text()
    capacity = parse_capacity(text)
    info["config_file"] = str(nginx.config_path)
    info["worker_connections"] = capacity.worker_connections
    info["worker_processes"] = capacity.worker_processes
    info["capacity"] = capacity.connections
    info["worker_shutdown_timeout_s"] = parse_shutdown_timeout(text)
    info["connections_used_pct"] = round(100 * active / capacity.connections, 1) if active is not None else None
    tested = config_test(nginx)
    info["config_test"] = {"ok": tested.ok, "output": tested.output}
    notable = [line for line in nginx.error_log_tail(500) if any(level in line for level in _NOTABLE)]
    info["error_log_file"] = str(nginx.error_log) if nginx.error_log else None
    info["worker_connections_exhausted"] = sum(EXHAUSTED in line for line in notable)
    info["error_log"] = notable[-log_lines:] if log_lines else []
    info.update(_processes(nginx))


def _last_clear(ctx: ToolContext, resource: Resource, info: dict[str, Any]) -> dict[str, Any] | None:
    """When nginx_clear_connections last reloaded this nginx, and whether the newest workers are still its own.

    Its workers all alive, and none younger than the record (old workers of an earlier
    generation may linger; a later reload would have started younger ones).
    """
    record = last_clear(ctx, resource)
    if record is None:
        return None
    age = time.time() - record.at
    youngest = info.get("youngest_worker_age_s")
    ours = set(record.workers) <= set(info.get("workers", [])) and youngest is not None and youngest >= age - 0.1
    return {"age_s": round(age, 1), "same_workers": ours}


def _local(nginx: LocalNginx, info: dict[str, Any]) -> None:
    """What only a local nginx has: the access log in OpsGraph's format and runtime overrides."""
    recent = recent_requests(nginx.access_log)
    info["recent_requests"] = {**asdict(recent), "nginx_5xx": recent.nginx_5xx, "error_rate_pct": recent.error_rate_pct}
    override = nginx.override()
    info["runtime_override"] = override.model_dump() if override else None


@declare(risk=Risk.READ, target=ResourceKind.NGINX, idempotent=True)
def nginx_info(args: NginxInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read nginx stub_status (active, reading, writing, waiting, dropped), worker_connections and
    capacity, recent 5xx, error-log lines and the upstream's health.

    When nginx is full, the host's connection count stands in for stub_status; the config
    test runs too. Read-only, and answers even when nginx is down (the error log says why) or full, so it
    serves every diagnosis.
    """
    resource = ctx.resource(args.resource)
    status, info = _status(resource)
    info["established_connections"] = established_connections(resource.connection.port)
    active = status.active if status else (info["established_connections"] if info["saturated"] else None)
    nginx: NginxControl | None = None
    if resource.environment is Environment.LOCAL:
        nginx = local_nginx(ctx, resource)
    elif resource.environment is Environment.EXTERNAL:
        nginx = external_nginx(resource)
    if nginx is None:
        info["capacity"] = None
        info["note"] = (
            "config, logs and capacity are read for local resources and external ones with external.paths.config_file"
        )
    else:
        _from_config(nginx, info, active, args.log_lines)
    if isinstance(nginx, LocalNginx):
        _local(nginx, info)
    if nginx is not None:
        info["last_clear"] = _last_clear(ctx, resource, info)
    info["upstream"] = _upstream_check(ctx, resource)
    return info
