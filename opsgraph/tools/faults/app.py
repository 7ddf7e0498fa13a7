"""Sample-app faults, injected through the app's own failure injection (`POST /load/...`).

CPU saturation is threads inside the app's process burning CPU for CPU_BURN_S (they
hold the GIL, so every request waits for them: latency rises on any machine). The app
holds the fault after `opsgraph inject` exits; the reset asks it to stop, and a restart
of the app ends it too, as it would end a runaway loop in production.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.spec import ToolContext, ToolError

# The app's own bounds: at most 300 s and 16 threads. 8 threads take /health from ~15 ms to ~1 s here.
CPU_BURN_S = 300
CPU_THREADS = 8
_TIMEOUT_S = 30.0


def _url(resource: Resource) -> str:
    return f"http://{resource.connection.host}:{resource.connection.port}"


def _call(method: str, resource: Resource, path: str, params: dict[str, int] | None = None) -> dict[str, Any]:
    url = _url(resource)
    try:
        response = httpx.request(method, f"{url}{path}", params=params, timeout=_TIMEOUT_S)
    except httpx.TransportError as error:
        raise ToolError(f"the sample app at {url} did not answer: {error}") from None
    if response.status_code == 409:
        raise ToolError(f"{path} is already injected at {url}: reset it first (DELETE {url}{path})")
    if response.status_code >= 400:
        raise ToolError(f"{method} {path} at {url} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def _cpu(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    burn = _call("POST", resource, "/load/cpu", {"duration": CPU_BURN_S, "threads": CPU_THREADS})
    return {"app": _url(resource), "threads": burn["threads"], "duration_s": burn["duration_s"]}


def _stop_cpu(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    return {"app": _url(resource), "stopped": _call("DELETE", resource, "/load/cpu").get("stopped")}


SCENARIOS = [
    Scenario(
        name="app-cpu-saturation",
        target_kind=ResourceKind.HTTP,
        description=f"{CPU_THREADS} threads burn CPU inside the sample app for {CPU_BURN_S} s: every request slows",
        inject=_cpu,
        reset=_stop_cpu,
    ),
]
