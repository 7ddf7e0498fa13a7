"""Probes: look at a resource once and grade it HEALTHY / DEGRADED / FAILED by its thresholds.

Deterministic code, no model: the detector and the verifier both trust these verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opsgraph.tools.inventory import Inventory, Resource, ResourceKind
from opsgraph.tools.probes.container_probe import probe_container
from opsgraph.tools.probes.gcp_probe import probe_gcp
from opsgraph.tools.probes.http_probe import probe_http
from opsgraph.tools.probes.nginx_probe import probe_nginx
from opsgraph.tools.probes.postgres_probe import probe_postgres
from opsgraph.tools.probes.redis_probe import probe_redis
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.snapshot import Snapshot

_PROBES: dict[ResourceKind, Callable[[Resource], Snapshot]] = {
    ResourceKind.REDIS: probe_redis,
    ResourceKind.POSTGRES: probe_postgres,
    ResourceKind.NGINX: probe_nginx,
    ResourceKind.HTTP: probe_http,
    ResourceKind.CONTAINER: probe_container,
    ResourceKind.GCP_COMPUTE: probe_gcp,
    ResourceKind.GCP_REDIS: probe_gcp,
    ResourceKind.GCP_SQL: probe_gcp,
}


def probe(resource: Resource) -> Snapshot:
    """Probe one resource; an unreachable resource is a FAILED snapshot, not an exception.

    Redacted here, at the source: a reason quotes what a server answered (an error may
    echo a connection string), and snapshots go into checkpoints, ledgers and reports.
    """
    return redact_value(_PROBES[resource.kind](resource))


def probe_all(inventory: Inventory) -> list[Snapshot]:
    return [snapshot for snapshot, _ in timed_probes(inventory)]


def timed_probes(inventory: Inventory) -> list[tuple[Snapshot, float]]:
    """Every resource's probe with the seconds it took (what `opsgraph serve` reports per kind)."""
    found: list[tuple[Snapshot, float]] = []
    for resource in inventory.resources:
        began = time.monotonic()
        snapshot = probe(resource)
        found.append((snapshot, time.monotonic() - began))
    return found
