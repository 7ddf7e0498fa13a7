"""Restarting nginx and clearing its connections."""

from __future__ import annotations

from typing import Any

from opsgraph.tools.environments.local.nginx_server import WORKER_SHUTDOWN_TIMEOUT_S
from opsgraph.tools.environments.local.process import LocalStackError
from opsgraph.tools.nginx_tools.status import local_nginx, read_stub_status, running_master
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError


def nginx_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Stop and start nginx through its environment: every connection drops."""
    resource = ctx.resource(args.resource)
    status = ctx.lifecycle(resource).restart(resource.name)
    return {"pid": status.pid, "running": status.running}


def nginx_clear_connections(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Drop lingering connections: graceful reload, then wait until the old workers are gone.

    nginx has no command to close connections; a reload is the real mechanism. Old workers
    close idle keep-alive connections at once, finish in-flight requests, and are cut off
    after worker_shutdown_timeout; new workers start with none. Clients that still want a
    connection open a new one: if the count climbs back, the load is real (scale instead).
    """
    resource = ctx.resource(args.resource)
    nginx = local_nginx(ctx, resource)
    master = running_master(nginx, resource)
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
