"""Nginx tools: stub_status, the live config, `nginx -t` before every reload, restarts.

Reading works for any nginx that serves `/nginx_status`; changing the config needs the
config file, so those tools act on `environment: local` resources, found through the
local environment's state folder (`local_nginx`, the one lookup). Every config change is
tested with `nginx -t` and applied by a graceful reload (SIGHUP); a change that fails
either is rolled back, so the running nginx keeps serving with its previous config.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.inventory import Environment, ResourceKind
from opsgraph.tools.nginx_tools.config import (
    Capacity,
    NginxScaleConnectionsArgs,
    connections_ceiling,
    nginx_reload,
    nginx_scale_connections,
    parse_capacity,
)
from opsgraph.tools.nginx_tools.info import NginxInfoArgs, nginx_info
from opsgraph.tools.nginx_tools.lifecycle import nginx_clear_connections, nginx_restart
from opsgraph.tools.nginx_tools.status import (
    ERROR_WINDOW_S,
    MIN_REQUESTS,
    STATUS_PATH,
    RecentRequests,
    local_nginx,
    read_stub_status,
    recent_requests,
    serving_nginx,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolSpec

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
        check_limits=connections_ceiling,
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

# What the probe, the fault injectors and the tests import from here.
__all__ = [
    "ERROR_WINDOW_S",
    "MIN_REQUESTS",
    "STATUS_PATH",
    "TOOLS",
    "Capacity",
    "RecentRequests",
    "local_nginx",
    "parse_capacity",
    "read_stub_status",
    "recent_requests",
    "serving_nginx",
]
