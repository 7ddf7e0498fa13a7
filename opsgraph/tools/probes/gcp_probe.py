"""GCP probes: a Compute Engine VM, a Memorystore instance, a Cloud SQL instance, each graded by its
state in the API and by its Cloud Monitoring metrics against the inventory's thresholds.

- gcp_compute: `status` (RUNNING healthy; PROVISIONING / STAGING / REPAIRING degraded: on
  the way up; anything else failed: `gcp_compute_down`), CPU (`gcp_compute_cpu_saturation`)
  and the Ops Agent's memory use (`gcp_compute_memory_pressure`);
- gcp_redis: `state` (READY healthy; CREATING / UPDATING / MAINTENANCE / IMPORTING /
  FAILING_OVER degraded; else failed: `gcp_redis_down`) and memory usage ratio
  (`gcp_redis_memory_pressure`);
- gcp_sql: `state` (RUNNABLE healthy; PENDING_CREATE / MAINTENANCE degraded; else failed:
  `gcp_sql_down`), backends against max_connections (`gcp_sql_connection_overload`),
  CPU (`gcp_sql_cpu_saturation`) and disk (`gcp_sql_storage_pressure`).

Metrics are read only while the instance serves. A metric without a point is "no data":
its metric is None, a reason says so, and it neither passes nor fails the resource. An
API that refuses or does not answer is a FAILED snapshot: `<kind>_auth_failed` for 401 /
403 (credentials or IAM: no restart fixes them), `<kind>_missing` for 404, else
`<kind>_unreachable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from opsgraph.tools.connections import postgres_conninfo
from opsgraph.tools.environments.gcp.dataplane import postgres_data_plane
from opsgraph.tools.environments.gcp.errors import GcpApiError, Grant
from opsgraph.tools.environments.gcp.instances import (
    Json,
    compute_instance,
    memorystore_name,
    redis_instance,
    short_name,
    sql_instance,
)
from opsgraph.tools.environments.gcp.monitoring import WINDOW_S, guest_metrics, latest_value, latest_values
from opsgraph.tools.environments.gcp.permissions import PROBE_PERMISSIONS
from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.errors import ToolError
from opsgraph.tools.inventory import Band, Resource, ResourceKind
from opsgraph.tools.probes.grading import Finding, grade, snapshot_of
from opsgraph.tools.snapshot import Health, Snapshot

Metrics = dict[str, float | int | str | None]

REDIS_USAGE_METRIC = "redis.googleapis.com/stats/memory/usage_ratio"
SQL_BACKENDS_METRIC = "cloudsql.googleapis.com/database/postgresql/num_backends"
SQL_CPU_METRIC = "cloudsql.googleapis.com/database/cpu/utilization"
SQL_DISK_METRIC = "cloudsql.googleapis.com/database/disk/utilization"

_COMPUTE_STARTING = frozenset({"PROVISIONING", "STAGING", "REPAIRING"})
_REDIS_BUSY = frozenset({"CREATING", "UPDATING", "MAINTENANCE", "IMPORTING", "FAILING_OVER"})
_SQL_BUSY = frozenset({"PENDING_CREATE", "MAINTENANCE"})
_SEVERITY = [Health.FAILED, Health.DEGRADED, Health.HEALTHY]
_NO_DATA = f"no data (Cloud Monitoring has no point in the last {WINDOW_S // 60} min)"


def _api_failure(resource: Resource, error: GcpApiError) -> Snapshot:
    """The snapshot of a resource whose API refused or did not answer (see the module docstring)."""
    if error.credentials_refused:
        suffix = "auth_failed"
    elif error.status == 404:
        suffix = "missing"
    else:
        suffix = "unreachable"
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=Health.FAILED,
        symptom=f"{resource.kind}_{suffix}",
        reasons=[str(error)],
        taken_at=time.time(),
    )


def _state(value: str | None, serving: str, busy: frozenset[str], symptom: str, what: str) -> tuple[Finding, bool]:
    """The finding about an instance's state, and whether it serves (so its metrics mean something)."""
    if value == serving:
        return Finding(Health.HEALTHY, symptom, f"{what} is {value}"), True
    if value in busy:
        return Finding(Health.DEGRADED, symptom, f"{what} is {value}, not {serving}: it is not serving yet"), False
    return Finding(Health.FAILED, symptom, f"{what} is {value}, not {serving}: it is not serving"), False


def _percent(value: float | None, band: Band, symptom: str, what: str, notes: list[str]) -> Finding:
    """A percentage graded by its band; no data is noted, and healthy by default only in the verdict."""
    if value is None:
        notes.append(f"{what}: {_NO_DATA}")
        return Finding(Health.HEALTHY, symptom, f"{what}: {_NO_DATA}")
    health = grade(value, band)
    limit = band.degraded if health is Health.DEGRADED else band.failed
    return Finding(health, symptom, f"{what} {value:.1f} % ({health} at >= {limit:g} %)")


def _snapshot(resource: Resource, findings: list[Finding], metrics: Metrics, notes: list[str]) -> Snapshot:
    """The worst finding leads (the state first among equals); notes (no data, not read) follow the reasons."""
    ranked = sorted(findings, key=lambda finding: _SEVERITY.index(finding.health))
    snapshot = snapshot_of(resource, ranked, metrics)
    return snapshot.model_copy(update={"reasons": [*snapshot.reasons, *notes]})


def _not_read(notes: list[str], status: str | None) -> None:
    notes.append(f"metrics not read: the instance is {status}")


def _compute(resource: Resource, grant: Grant) -> Snapshot:
    instance = compute_instance(resource, grant)
    status = instance.get("status")
    state, serving = _state(status, "RUNNING", _COMPUTE_STARTING, "gcp_compute_down", f"VM {target_of(resource).name}")
    notes: list[str] = []
    usage: dict[str, float | None] = {"cpu_used_pct": None, "memory_used_pct": None}
    if serving:
        usage = guest_metrics(resource, instance, grant)
    else:
        _not_read(notes, status)
    thresholds = resource.thresholds
    findings = [state]
    if serving:
        findings += [
            _percent(usage["cpu_used_pct"], thresholds.cpu_used_pct, "gcp_compute_cpu_saturation", "CPU", notes),
            _percent(
                usage["memory_used_pct"], thresholds.memory_used_pct, "gcp_compute_memory_pressure", "memory", notes
            ),
        ]
    metrics: Metrics = {"status": status, "machine_type": short_name(instance.get("machine_type")), **usage}
    return _snapshot(resource, findings, metrics, notes)


def _redis(resource: Resource, grant: Grant) -> Snapshot:
    instance = redis_instance(resource, grant)
    status = instance.get("state")
    state, serving = _state(status, "READY", _REDIS_BUSY, "gcp_redis_down", "instance")
    notes: list[str] = []
    findings = [state]
    used_pct: float | None = None
    if serving:
        settings = resource.gcp_settings
        ratio = latest_value(
            settings, target_of(resource), grant, REDIS_USAGE_METRIC, {"instance_id": memorystore_name(resource)}
        )
        used_pct = None if ratio is None else round(100.0 * ratio, 2)
        band = resource.thresholds.memory_used_pct
        findings.append(_percent(used_pct, band, "gcp_redis_memory_pressure", "memory", notes))
    else:
        _not_read(notes, status)
    metrics: Metrics = {
        "state": status,
        "tier": instance.get("tier"),
        "memory_size_gb": instance.get("memory_size_gb"),
        "memory_used_pct": used_pct,
    }
    return _snapshot(resource, findings, metrics, notes)


def _max_connections(resource: Resource, instance: Json, notes: list[str]) -> int | None:
    """max_connections from the instance's database flags, else as its PostgreSQL reports it."""
    for flag in instance.get("settings", {}).get("database_flags", []):
        if flag.get("name") == "max_connections":
            return int(flag["value"])
    try:
        plane = postgres_data_plane(resource, instance)
        with psycopg.connect(postgres_conninfo(plane), autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    except (ToolError, psycopg.Error) as error:
        notes.append(f"max_connections: not a database flag, and the PostgreSQL did not answer ({error})")
        return None
    return int(row[0]) if row else None


def _sql(resource: Resource, grant: Grant) -> Snapshot:
    instance = sql_instance(resource, grant)
    status = instance.get("state")
    state, serving = _state(status, "RUNNABLE", _SQL_BUSY, "gcp_sql_down", "instance")
    notes: list[str] = []
    findings = [state]
    metrics: Metrics = {"state": status, "tier": instance.get("settings", {}).get("tier")}
    if not serving:
        _not_read(notes, status)
        return _snapshot(resource, findings, metrics, notes)
    settings = resource.gcp_settings
    target = target_of(resource)
    labels = {"database_id": f"{settings.project}:{settings.instance_name(resource.name)}"}

    def read(metric: str) -> list[float]:
        return latest_values(settings, target, grant, metric, labels)

    per_database = read(SQL_BACKENDS_METRIC)  # one series per database: their sum is the server's
    backends = int(sum(per_database)) if per_database else None
    maximum = _max_connections(resource, instance, notes)
    connections_pct = round(100.0 * backends / maximum, 2) if backends is not None and maximum else None
    cpu, disk = (_first_pct(read(metric)) for metric in (SQL_CPU_METRIC, SQL_DISK_METRIC))
    thresholds = resource.thresholds
    findings += [
        _percent(connections_pct, thresholds.connections_used_pct, "gcp_sql_connection_overload", "connections", notes),
        _percent(cpu, thresholds.cpu_used_pct, "gcp_sql_cpu_saturation", "CPU", notes),
        _percent(disk, thresholds.storage_used_pct, "gcp_sql_storage_pressure", "disk", notes),
    ]
    metrics |= {
        "connections": backends,
        "max_connections": maximum,
        "connections_used_pct": connections_pct,
        "cpu_used_pct": cpu,
        "storage_used_pct": disk,
    }
    return _snapshot(resource, findings, metrics, notes)


def _first_pct(ratios: list[float]) -> float | None:
    return round(100.0 * ratios[0], 2) if ratios else None


_BY_KIND: dict[ResourceKind, Callable[[Resource, Grant], Snapshot]] = {
    ResourceKind.GCP_COMPUTE: _compute,
    ResourceKind.GCP_REDIS: _redis,
    ResourceKind.GCP_SQL: _sql,
}


def probe_gcp(resource: Resource) -> Snapshot:
    """Probe a GCP resource of any of the three kinds; an API failure is a FAILED snapshot, not an exception."""
    try:
        return _BY_KIND[resource.kind](resource, PROBE_PERMISSIONS[resource.kind])
    except GcpApiError as error:
        return _api_failure(resource, error)
