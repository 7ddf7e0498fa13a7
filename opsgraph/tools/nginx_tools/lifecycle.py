"""Restarting nginx and clearing its connections."""

from __future__ import annotations

import time
from typing import Any

import httpx

from opsgraph.tools.atomic_file import write_atomic
from opsgraph.tools.identity import server_identity
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.nginx_tools.config import CONFIG_ENVIRONMENTS, parse_shutdown_timeout, reload_nginx, tested_nginx
from opsgraph.tools.nginx_tools.status import (
    ClearRecord,
    clear_record_path,
    closed_without_answer,
    established_connections,
    read_stub_status,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, declare

# How long to wait for the old workers after the reload: their worker_shutdown_timeout and
# a second, but never past this (the tool has a deadline of its own). Without a
# worker_shutdown_timeout, old workers wait for their clients; the result lists them.
MAX_OLD_WORKER_WAIT_S = 12.0
UNBOUNDED_OLD_WORKER_WAIT_S = 5.0


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.NGINX, idempotent=False, observe=server_identity)
def nginx_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart nginx through its environment; every open connection drops."""
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


def _connections(resource: Resource) -> dict[str, Any]:
    """Open connections now: stub_status, or the host's count for the port when nginx is too full to answer."""
    try:
        status = read_stub_status(resource)
    except httpx.HTTPError as error:
        if not closed_without_answer(error):
            raise ToolError(f"{resource.name} does not answer /nginx_status: {type(error).__name__}: {error}") from None
        return {"active": established_connections(resource.connection.port), "waiting": None, "saturated": True}
    except ValueError as error:
        raise ToolError(str(error)) from None
    return {"active": status.active, "waiting": status.waiting, "saturated": False}


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.NGINX, environments=CONFIG_ENVIRONMENTS, idempotent=True)
def nginx_clear_connections(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Free nginx's connection slots by a graceful reload, also when it is full: new workers start with
    every slot free, old ones close idle connections and are cut off after worker_shutdown_timeout;
    clients that still need one reconnect.

    nginx has no command to close connections; a reload is the real mechanism. The tool
    waits until the old workers are gone, having finished their in-flight requests. If
    the count climbs back, the load is real (scale instead): the new workers are recorded
    (`ClearRecord`) so that the next diagnosis can see it.
    """
    resource = ctx.resource(args.resource)
    nginx, master, _ = tested_nginx(ctx, resource)
    before = _connections(resource)
    old_workers = nginx.worker_pids(master)
    new_workers = reload_nginx(ctx, resource, nginx)
    record = clear_record_path(ctx, resource)
    record.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(record, ClearRecord(at=time.time(), workers=sorted(new_workers)).model_dump_json())
    grace = parse_shutdown_timeout(nginx.config_path.read_text())
    wait_s = UNBOUNDED_OLD_WORKER_WAIT_S if grace is None else min(grace + 1, MAX_OLD_WORKER_WAIT_S)
    lingering = nginx.wait_for_exit(old_workers, wait_s)
    after = _connections(resource)
    result = {
        "active_before": before["active"],
        "waiting_before": before["waiting"],
        "saturated_before": before["saturated"],
        "active_after": after["active"],
        "saturated_after": after["saturated"],
        "closed": max(0, before["active"] - after["active"]),
        "old_workers_still_running": sorted(lingering),
    }
    if lingering and grace is None:
        result["note"] = (
            "the old workers still hold their connections: the config sets no worker_shutdown_timeout, so they "
            "wait for their clients"
        )
    return result
