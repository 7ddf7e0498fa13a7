"""nginx_info: everything read-only about one nginx, for diagnosis."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import httpx
from pydantic import Field

from opsgraph.tools.inventory import Environment, Resource
from opsgraph.tools.nginx_tools.config import parse_capacity
from opsgraph.tools.nginx_tools.status import StubStatus, local_nginx, read_stub_status, recent_requests
from opsgraph.tools.spec import ToolArgs, ToolContext


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
