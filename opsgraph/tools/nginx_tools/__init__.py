"""Nginx tools: stub_status, the live config, `nginx -t` before every reload, restarts.

Reading works for any nginx that serves `/nginx_status`; changing the config needs the
config file, so those tools act on `environment: local` resources (found through the local
environment's state folder) and on `environment: external` ones that declare
`external.paths.config_file` and `pid_file` (`nginx_of`, the one lookup; the prefix rule is
in `status.external_nginx`). Every config change is tested with `nginx -t` and applied by a
graceful reload (the declared reload command of an external nginx, else SIGHUP); a change
that fails either is rolled back, so the running nginx keeps serving with its previous config.
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
    closed_without_answer,
    config_test,
    established_connections,
    local_nginx,
    read_stub_status,
    recent_requests,
    serving_nginx,
)
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolSpec

# Where a config file is reachable: a local nginx's state folder, an external one's declared paths.
CONFIG_ENVIRONMENTS = frozenset({Environment.LOCAL, Environment.EXTERNAL})

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
        environments=CONFIG_ENVIRONMENTS,
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
            "Set nginx worker_connections in its own config file (tested with nginx -t, reloaded, rolled back on "
            "failure) so that more clients fit; kept across restarts."
        ),
        args_model=NginxScaleConnectionsArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.DISRUPTIVE,
        run=nginx_scale_connections,
        idempotent=True,
        undo="nginx_scale_connections with worker_connections = previous_worker_connections from the result",
        check_limits=connections_ceiling,
        environments=CONFIG_ENVIRONMENTS,
        may_change=frozenset({"config_sha256"}),
    ),
    ToolSpec(
        name="nginx_clear_connections",
        description=(
            "Free nginx's connection slots by a graceful reload, also when it is full: new workers start with "
            "every slot free, old ones close idle connections and are cut off after worker_shutdown_timeout; "
            "clients that still need one reconnect."
        ),
        args_model=ToolArgs,
        target_kind=ResourceKind.NGINX,
        risk=Risk.DISRUPTIVE,
        run=nginx_clear_connections,
        idempotent=True,
        environments=CONFIG_ENVIRONMENTS,
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
    "closed_without_answer",
    "config_test",
    "established_connections",
    "local_nginx",
    "parse_capacity",
    "read_stub_status",
    "recent_requests",
    "serving_nginx",
]
