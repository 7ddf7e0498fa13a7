"""Nginx probe: stub_status answers, and its active connections."""

from __future__ import annotations

import re
import time

import httpx

from opsgraph.graph.schemas import Health, Snapshot
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import unreachable

STATUS_PATH = "/nginx_status"
_ACTIVE = re.compile(r"Active connections:\s*(\d+)")


def probe_nginx(resource: Resource) -> Snapshot:
    url = f"http://{resource.connection.host}:{resource.connection.port}{STATUS_PATH}"
    try:
        response = httpx.get(url, timeout=3.0)
        response.raise_for_status()
    except httpx.HTTPError as error:
        return unreachable(resource, error)
    match = _ACTIVE.search(response.text)
    if match is None:
        return unreachable(resource, ValueError(f"{url} did not return nginx stub_status output"))
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=Health.HEALTHY,
        metrics={"active_connections": int(match.group(1))},
        taken_at=time.time(),
    )
