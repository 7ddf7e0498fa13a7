"""Changing nginx's config: parse capacity, reload, scale worker_connections.

Every change is backed up, tested with `nginx -t` and applied by a graceful reload; a
change that fails either is rolled back. The config changed is the nginx's own: the one in
the state folder for a local nginx (plus ``runtime-overrides.json``, so that LocalStack's
regeneration keeps it), the declared ``external.paths.config_file`` for an external one
(its backup goes to OpsGraph's state folder, never next to someone else's config; the
file keeps its mode and owner). A reload is the declared ``external.commands.reload`` when
the inventory gives one, else SIGHUP to the master of the pid file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from pydantic import Field

from opsgraph.tools.atomic_file import write_atomic
from opsgraph.tools.environments.external import ExternalEnvironment, LifecycleFailed, LifecycleRefused
from opsgraph.tools.environments.local.nginx_server import LocalNginx, RuntimeOverride
from opsgraph.tools.environments.nginx_control import NginxControl, NginxControlError
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.nginx_tools.status import (
    closed_without_answer,
    established_connections,
    nginx_of,
    read_stub_status,
    running_master,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, above_ceiling, declare


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
_SHUTDOWN_TIMEOUT = re.compile(r"^\s*worker_shutdown_timeout\s+(\d+)(ms|s|m|h)?\s*;", re.MULTILINE)
_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Where a config file is reachable: a local nginx's state folder, an external one's declared paths.
CONFIG_ENVIRONMENTS = frozenset({Environment.LOCAL, Environment.EXTERNAL})


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


def parse_shutdown_timeout(config: str) -> float | None:
    """worker_shutdown_timeout in seconds; None when unset (old workers then wait for their clients)."""
    match = _SHUTDOWN_TIMEOUT.search(config)
    return int(match[1]) * _TIME_UNITS[match[2] or "s"] if match else None


def with_worker_connections(config: str, value: int) -> str:
    """The config with worker_connections set to ``value``; everything else byte for byte."""
    changed, count = _WORKER_CONNECTIONS.subn(rf"\g<1>{value}\g<3>", config)
    if count != 1:
        raise ToolError(f"expected one worker_connections directive in the config, found {count}")
    return changed


def reload_nginx(ctx: ToolContext, resource: Resource, nginx: NginxControl) -> set[int]:
    """Reload as the resource says: its declared reload command (external), else SIGHUP; the new workers' pids."""
    trigger: Callable[[], None] | None = None
    if resource.environment is Environment.EXTERNAL and resource.external.lifecycle_commands().reload is not None:
        environment = ExternalEnvironment(ctx.inventory)

        def trigger() -> None:
            environment.reload(resource.name)

    try:
        return nginx.reload(trigger=trigger)
    except (NginxControlError, LifecycleFailed, LifecycleRefused) as error:
        raise ToolError(str(error)) from None


def backup_path(ctx: ToolContext, resource: Resource, nginx: NginxControl) -> Path:
    """Where the previous config is kept: the local folder's backup, or OpsGraph's state folder for an external one."""
    if isinstance(nginx, LocalNginx):
        return nginx.backup_path
    folder = ctx.state_dir.resolve() / "external" / resource.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (nginx.config_path.name + ".bak")


def _apply_config(ctx: ToolContext, resource: Resource, nginx: NginxControl, config: str) -> str:
    """Back up, write, `nginx -t`, reload; on any failure restore the backup. Returns -t's output.

    If `nginx -t` fails, the running nginx never saw the change: restoring the file is the
    whole rollback. If the reload fails (a port nginx cannot bind passes -t), nginx keeps its
    old workers; the backup is restored and reloaded so that file and process agree again.
    """
    previous = nginx.config_path.read_text()
    write_atomic(backup_path(ctx, resource, nginx), previous)
    write_atomic(nginx.config_path, config)
    test = nginx.test_config()
    if not test.ok:
        write_atomic(nginx.config_path, previous)
        raise ToolError(
            f"nginx -t rejected the change; config restored, nginx still runs the previous one: {test.output}"
        )
    try:
        reload_nginx(ctx, resource, nginx)
    except ToolError as error:
        write_atomic(nginx.config_path, previous)
        try:
            reload_nginx(ctx, resource, nginx)
        except ToolError as again:
            raise ToolError(f"{error}; config restored, but reloading it failed too: {again}") from None
        raise ToolError(f"{error}; config restored and reloaded") from None
    return test.output


def tested_nginx(ctx: ToolContext, resource: Resource) -> tuple[NginxControl, int, str]:
    """The running nginx of a resource whose config on disk passes `nginx -t`: (controls, master, -t output).

    What every reload-based step starts from: a config that fails the test would make
    the reload fail, so nothing is sent to nginx then.
    """
    nginx = nginx_of(ctx, resource)
    master = running_master(nginx, resource)
    test = nginx.test_config()
    if not test.ok:
        raise ToolError(f"nginx -t failed, not reloading (nginx keeps running its current config): {test.output}")
    return nginx, master, test.output


@declare(risk=Risk.SAFE, target=ResourceKind.NGINX, environments=CONFIG_ENVIRONMENTS, idempotent=True)
def nginx_reload(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Test the config with nginx -t, then reload gracefully; refuses if the test fails.

    New workers take the config on disk; in-flight requests finish on the old ones.
    """
    resource = ctx.resource(args.resource)
    nginx, _, nginx_t = tested_nginx(ctx, resource)
    workers = reload_nginx(ctx, resource, nginx)
    return {"reloaded": True, "workers": sorted(workers), "nginx_t": nginx_t}


class NginxScaleConnectionsArgs(ToolArgs):
    worker_connections: Annotated[int, Field(ge=16, description="New worker_connections (per worker process)")]


def connections_ceiling(args: NginxScaleConnectionsArgs, resource: Resource) -> str | None:
    return above_ceiling("worker_connections", args.worker_connections, resource.policy.max_worker_connections)


def open_connections(resource: Resource) -> int:
    """Connections open now: stub_status's count, or the host's count for the port when nginx is too full to answer."""
    try:
        return read_stub_status(resource).active
    except httpx.HTTPError as error:
        if closed_without_answer(error):
            return established_connections(resource.connection.port)
        raise ToolError(
            f"nginx of {resource.name} does not answer /nginx_status: {type(error).__name__}: {error}"
        ) from None
    except ValueError as error:
        raise ToolError(str(error)) from None


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.NGINX,
    environments=CONFIG_ENVIRONMENTS,
    idempotent=True,
    undo="nginx_scale_connections with worker_connections = previous_worker_connections from the result",
    check_limits=connections_ceiling,
    may_change=frozenset({"config_sha256"}),
)
def nginx_scale_connections(args: NginxScaleConnectionsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set nginx worker_connections in its own config file (tested with nginx -t, reloaded, rolled back on
    failure) so that more clients fit; kept across restarts.

    Refuses to go at or below the connections open now (that would make pressure worse).
    """
    resource = ctx.resource(args.resource)
    if problem := connections_ceiling(args, resource):
        raise ToolError(problem)
    nginx = nginx_of(ctx, resource)
    running_master(nginx, resource)
    config = nginx.config_path.read_text()
    current = parse_capacity(config)
    active = open_connections(resource)
    capacity = args.worker_connections * current.worker_processes
    if capacity <= active:
        raise ToolError(
            f"worker_connections {args.worker_connections} x {current.worker_processes} workers = {capacity} is not "
            f"above the {active} connections open now; refusing to make pressure worse"
        )
    nginx_t = "unchanged"
    if args.worker_connections != current.worker_connections:
        nginx_t = _apply_config(ctx, resource, nginx, with_worker_connections(config, args.worker_connections))
    kept = True  # an external nginx's own config file is what it starts with
    if isinstance(nginx, LocalNginx):
        kept = _record_local_override(nginx, resource, args.worker_connections)
    return {
        "previous_worker_connections": current.worker_connections,
        "worker_connections": args.worker_connections,
        "worker_processes": current.worker_processes,
        "capacity": capacity,
        "active_connections": active,
        "config_file": str(nginx.config_path),
        "kept_across_restarts": kept,
        "nginx_t": nginx_t,
    }


def _record_local_override(nginx: LocalNginx, resource: Resource, worker_connections: int) -> bool:
    """Keep a value that differs from the inventory's for LocalStack's next start; whether one is kept."""
    baseline = resource.local.worker_connections
    kept = worker_connections != baseline
    nginx.record_override(
        RuntimeOverride(
            worker_connections=worker_connections,
            inventory_worker_connections=baseline,
            set_by="nginx_scale_connections",
            set_at=time.time(),
        )
        if kept
        else None
    )
    return kept
