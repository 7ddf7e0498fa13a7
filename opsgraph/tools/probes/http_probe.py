"""HTTP service probe: a few requests to its health endpoint; median latency and error share.

A handful of samples rather than one, so one slow request neither raises nor hides
an incident, and an error *rate* can be graded.
"""

from __future__ import annotations

import statistics
import time

import httpx

from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of, unreachable
from opsgraph.tools.snapshot import Snapshot

TIMEOUT_S = 3.0


def probe_http(resource: Resource) -> Snapshot:
    url = f"http://{resource.connection.host}:{resource.connection.port}{resource.http.health_path}"
    latencies_ms: list[float] = []
    errors: list[str] = []
    unanswered = 0
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for _ in range(resource.http.samples):
            started = time.perf_counter()
            try:
                response = client.get(url)
            except httpx.TransportError as error:
                unanswered += 1
                errors.append(f"{type(error).__name__}: {error}")
                latencies_ms.append(1000 * (time.perf_counter() - started))
                continue
            latencies_ms.append(1000 * (time.perf_counter() - started))
            if response.status_code >= 500:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
    if unanswered == resource.http.samples:
        return unreachable(resource, ConnectionError(errors[-1]))
    thresholds = resource.thresholds
    latency = statistics.median(latencies_ms)
    error_pct = 100.0 * len(errors) / resource.http.samples
    latency_health = grade(latency, thresholds.latency_ms)
    error_health = grade(error_pct, thresholds.error_rate_pct)
    last_error = errors[-1] if errors else "none"
    findings = [
        Finding(
            error_health,
            "http_errors",
            f"{len(errors)} of {resource.http.samples} requests to {url} failed; last: {last_error}",
        ),
        Finding(latency_health, "http_latency", f"median latency of {url} is {latency:.0f} ms"),
    ]
    return snapshot_of(resource, findings, {"latency_p50_ms": round(latency, 1), "error_rate_pct": round(error_pct, 1)})
