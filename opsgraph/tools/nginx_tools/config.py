"""Changing nginx's config: parse capacity, reload, scale worker_connections.

Every change is backed up, tested with `nginx -t` and applied by a graceful reload
(SIGHUP); a change that fails either is rolled back.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from opsgraph.tools.environments.local.nginx_server import LocalNginx, RuntimeOverride
from opsgraph.tools.environments.local.process import LocalStackError
from opsgraph.tools.inventory import Resource
from opsgraph.tools.nginx_tools.status import local_nginx, read_stub_status, running_master
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError


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
    running_master(nginx, resource)
    test = nginx.test_config()
    if not test.ok:
        raise ToolError(f"nginx -t failed, not reloading (nginx keeps running its current config): {test.output}")
    try:
        workers = nginx.reload()
    except LocalStackError as error:
        raise ToolError(str(error)) from None
    return {"reloaded": True, "workers": sorted(workers), "nginx_t": test.output}


class NginxScaleConnectionsArgs(ToolArgs):
    worker_connections: Annotated[int, Field(ge=16, description="New worker_connections (per worker process)")]


def connections_ceiling(args: NginxScaleConnectionsArgs, resource: Resource) -> str | None:
    ceiling = resource.policy.max_worker_connections
    if args.worker_connections > ceiling:
        return f"worker_connections {args.worker_connections} is above this resource's policy ceiling of {ceiling}"
    return None


def nginx_scale_connections(args: NginxScaleConnectionsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set worker_connections in the live config and reload; kept across local restarts.

    Refuses to go at or below the connections open now (that would make pressure worse).
    """
    resource = ctx.resource(args.resource)
    if problem := connections_ceiling(args, resource):
        raise ToolError(problem)
    nginx = local_nginx(ctx, resource)
    running_master(nginx, resource)
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
