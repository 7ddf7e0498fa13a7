"""Nginx probe: connections against capacity, a full nginx, the config on disk, the 5xx share of real traffic.

Capacity is worker_connections x worker_processes of the nginx's config file: found for a
local nginx through the worker that answered /nginx_status (it names itself in a header;
the probe has a resource, not a state folder), for an external one through its declared
``external.paths.config_file``. Elsewhere only stub_status is known: connections are
reported but not graded.

A full nginx cannot report itself: with every worker connection slot taken it accepts a
connection and closes it at once, so stub_status fails although nginx is up. That is
graded ``nginx_connections_exhausted`` (never ``nginx_unreachable``, whose answer is a
restart), measured by the host's count of established connections to the port
(/proc/net/tcp) against capacity. A refused or timed-out request is unreachable.

The config on disk is tested with ``nginx -t`` (cached by the files' mtime and size, see
`config_test`): one that fails is ``nginx_config_invalid`` while nginx keeps serving its
previous config — the next reload would fail. It is named before the other findings,
since every reload-based fix would fail on it.

The 5xx share comes from a local nginx's access log over the last ERROR_WINDOW_S seconds,
counting the 5xx nginx made itself (an upstream's own 5xx is the upstream's incident; see
RecentRequests). An external nginx's access log format is its own: not graded.
"""

from __future__ import annotations

import httpx

from opsgraph.tools.environments.local.nginx_server import LocalNginx
from opsgraph.tools.environments.nginx_control import NginxControl
from opsgraph.tools.inventory import Resource
from opsgraph.tools.nginx_tools import (
    ERROR_WINDOW_S,
    MIN_REQUESTS,
    Capacity,
    RecentRequests,
    closed_without_answer,
    config_test,
    established_connections,
    parse_capacity,
    read_stub_status,
    recent_requests,
    serving_nginx,
)
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable
from opsgraph.tools.snapshot import Health, Snapshot


def _capacity(nginx: NginxControl | None) -> Capacity | None:
    """From the config file; None if unknown, vanished or hand-edited past reading (then not graded)."""
    if nginx is None:
        return None
    try:
        return parse_capacity(nginx.config_path.read_text())
    except (OSError, ValueError):
        return None


def _config(nginx: NginxControl | None) -> Finding:
    if nginx is None:
        return Finding(Health.HEALTHY, "nginx_config_invalid", "config file unknown; not tested")
    tested = config_test(nginx)
    if tested.ok:
        return Finding(Health.HEALTHY, "nginx_config_invalid", f"{nginx.config_path} passes nginx -t")
    return Finding(
        Health.DEGRADED,
        "nginx_config_invalid",
        f"the config on disk ({nginx.config_path}) fails nginx -t, so the next reload will fail; nginx still "
        f"runs its previous config. nginx -t says: {tested.output}",
    )


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


def _exhausted(resource: Resource, error: httpx.HTTPError) -> Snapshot:
    """The snapshot of an nginx that accepts connections and closes them unanswered: full, not down."""
    nginx = serving_nginx(resource, None)
    capacity = _capacity(nginx)
    port = resource.connection.port
    established = established_connections(port)
    of = (
        f"capacity {capacity.connections} (worker_connections {capacity.worker_connections} x "
        f"{capacity.worker_processes} workers)"
        if capacity
        else "an unknown capacity"
    )
    full = Finding(
        Health.FAILED,
        "nginx_connections_exhausted",
        f"nginx at {resource.connection.host}:{port} accepts connections but closes them without an answer "
        f"({type(error).__name__}: {error}): every worker connection slot is taken; {established} established "
        f"connections to port {port} on this host, of {of}",
    )
    pct = round(100.0 * established / capacity.connections, 2) if capacity else None
    return snapshot_of(
        resource,
        [_config(nginx), full],
        {
            "established_connections": established,
            "worker_connections": capacity.worker_connections if capacity else None,
            "capacity": capacity.connections if capacity else None,
            "connections_used_pct": pct,
        },
    )


def probe_nginx(resource: Resource) -> Snapshot:
    try:
        status = read_stub_status(resource)
    except httpx.HTTPError as error:
        return _exhausted(resource, error) if closed_without_answer(error) else unreachable(resource, error)
    except ValueError as error:
        return unreachable(resource, error)
    nginx = serving_nginx(resource, status)
    capacity = _capacity(nginx)
    recent = recent_requests(nginx.access_log) if isinstance(nginx, LocalNginx) else None
    pct = round(100.0 * status.active / capacity.connections, 2) if capacity else None
    return snapshot_of(
        resource,
        [_config(nginx), _connections(resource, status.active, capacity), _errors(resource, recent)],
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
