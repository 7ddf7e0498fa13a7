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

from opsgraph.tools.nginx_tools.config import (
    Capacity,
    nginx_reload,
    nginx_scale_connections,
    parse_capacity,
)
from opsgraph.tools.nginx_tools.info import nginx_info
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
from opsgraph.tools.spec import ToolSpec

TOOLS: list[ToolSpec[Any]] = [nginx_info, nginx_reload, nginx_restart, nginx_scale_connections, nginx_clear_connections]

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
