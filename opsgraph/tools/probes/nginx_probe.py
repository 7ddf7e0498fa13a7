"""Nginx probe: active connections against capacity, and the 5xx share of real traffic.

Capacity is worker_connections x worker_processes of the config the running nginx was
started with; the 5xx share comes from its access log over the last ERROR_WINDOW_S
seconds, counting the 5xx nginx made itself (an upstream's own 5xx is the upstream's
incident; see RecentRequests). Both are read for local resources, whose nginx names its
worker in a header of /nginx_status (the probe has a resource, not a state folder).
Elsewhere only stub_status is known: connections are reported but not graded.
"""

from __future__ import annotations

import httpx

from opsgraph.graph.schemas import Health, Snapshot
from opsgraph.tools.environments.local.nginx_server import LocalNginx
from opsgraph.tools.inventory import Resource
from opsgraph.tools.nginx_tools import (
    ERROR_WINDOW_S,
    MIN_REQUESTS,
    Capacity,
    RecentRequests,
    parse_capacity,
    read_stub_status,
    recent_requests,
    serving_nginx,
)
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable


def _capacity(nginx: LocalNginx) -> Capacity | None:
    """From the config file; None if it vanished or was hand-edited past reading (then not graded)."""
    try:
        return parse_capacity(nginx.config_path.read_text())
    except (OSError, ValueError):
        return None


def _connections(resource: Resource, active: int, capacity: Capacity | None) -> Finding:
    if capacity is None:
        return Finding(Health.HEALTHY, "nginx_connection_pressure", f"{active} active connections; capacity unknown")
    pct = 100.0 * active / capacity.connections
    return Finding(
        grade(pct, resource.thresholds.connections_used_pct),
        "nginx_connection_pressure",
        f"{active} active connections of capacity {capacity.connections} "
        f"(worker_connections {capacity.worker_connections} x {capacity.worker_processes} workers; {pct:.1f} %)",
    )


def _errors(resource: Resource, recent: RecentRequests | None) -> Finding:
    if recent is None or recent.error_rate_pct is None:
        seen = "no access log" if recent is None else f"{recent.total} requests"
        return Finding(Health.HEALTHY, "nginx_errors", f"5xx rate not graded ({seen}; needs {MIN_REQUESTS})")
    return Finding(
        grade(recent.error_rate_pct, resource.thresholds.error_rate_pct),
        "nginx_errors",
        f"{recent.nginx_5xx} of {recent.total} requests in the last {ERROR_WINDOW_S:.0f} s got a 5xx made by nginx "
        f"({recent.error_rate_pct:.1f} %); {recent.relayed_5xx} more 5xx were relayed from the upstream",
    )


def probe_nginx(resource: Resource) -> Snapshot:
    try:
        status = read_stub_status(resource)
    except (httpx.HTTPError, ValueError) as error:
        return unreachable(resource, error)
    nginx = serving_nginx(resource, status)
    capacity = _capacity(nginx) if nginx else None
    recent = recent_requests(nginx.access_log) if nginx else None
    pct = round(100.0 * status.active / capacity.connections, 2) if capacity else None
    return snapshot_of(
        resource,
        [_connections(resource, status.active, capacity), _errors(resource, recent)],
        {
            "active_connections": status.active,
            "reading": status.reading,
            "writing": status.writing,
            "waiting": status.waiting,
            "dropped_connections": status.dropped,
            "worker_connections": capacity.worker_connections if capacity else None,
            "capacity": capacity.connections if capacity else None,
            "connections_used_pct": pct,
            "requests_in_window": recent.total if recent else None,
            "relayed_5xx": recent.relayed_5xx if recent else None,
            "error_rate_pct": round(recent.error_rate_pct, 2) if recent and recent.error_rate_pct is not None else None,
        },
    )
