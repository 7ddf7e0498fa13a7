"""The latest value of a Cloud Monitoring metric for one instance.

A metric with no point in the window is "no data" (`None`), never a made-up zero: an
agent that is not installed, a VM that just started, or a metric Google has not written
yet. Callers report it as such and neither pass nor fail the resource on it.
"""

from __future__ import annotations

import time

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.errors import Grant, google_call
from opsgraph.tools.environments.gcp.instances import Json
from opsgraph.tools.environments.gcp.target import Target, target_of
from opsgraph.tools.inventory import GcpSettings, Resource

CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
MEMORY_METRIC = "agent.googleapis.com/memory/percent_used"  # needs the Ops Agent in the guest
# Compute Engine writes its metrics every 60 s and they may show up to 240 s later.
WINDOW_S = 600


def _point_value(point: object) -> float | None:
    value = point.value  # type: ignore[attr-defined]  # a monitoring_v3 Point
    kind = type(value).pb(value).WhichOneof("value")
    if kind in ("double_value", "int64_value"):
        return float(getattr(value, kind))
    return None


def latest_values(
    settings: GcpSettings,
    target: Target,
    grant: Grant,
    metric_type: str,
    resource_labels: dict[str, str],
    metric_labels: dict[str, str] | None = None,
) -> list[float]:
    """The newest point of every time series of `metric_type` with these labels (empty: no data).

    Metric labels are matched here rather than in the filter: the series carry them
    whatever the filter says, and one narrow filter form is what every server accepts.
    """
    from google.cloud import monitoring_v3
    from google.protobuf.timestamp_pb2 import Timestamp

    conjuncts = [
        f'metric.type = "{metric_type}"',
        *(f'resource.labels.{k} = "{v}"' for k, v in resource_labels.items()),
    ]
    now = time.time()
    end, start = Timestamp(), Timestamp()
    end.FromNanoseconds(int(now * 1e9))
    start.FromNanoseconds(int((now - WINDOW_S) * 1e9))
    request = monitoring_v3.ListTimeSeriesRequest(
        name=f"projects/{settings.project}",
        filter=" AND ".join(conjuncts),
        interval=monitoring_v3.TimeInterval(end_time=end, start_time=start),
        view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
    )
    wanted = metric_labels or {}
    values: list[float] = []
    with google_call(target, grant):
        for series in clients.metrics(settings).list_time_series(
            request=request, timeout=clients.READ_TIMEOUT_S, retry=None
        ):
            if any(series.metric.labels.get(key) != value for key, value in wanted.items()) or not series.points:
                continue
            newest = max(series.points, key=lambda point: point.interval.end_time.timestamp())
            value = _point_value(newest)
            if value is not None:
                values.append(value)
    return values


def latest_value(
    settings: GcpSettings,
    target: Target,
    grant: Grant,
    metric_type: str,
    resource_labels: dict[str, str],
    metric_labels: dict[str, str] | None = None,
) -> float | None:
    """The newest point of one series (the first, when several match), or None: no data."""
    values = latest_values(settings, target, grant, metric_type, resource_labels, metric_labels)
    return values[0] if values else None


def guest_metrics(resource: Resource, instance: Json, grant: Grant) -> dict[str, float | None]:
    """CPU and memory use of the VM in %, from Cloud Monitoring; None: no data."""
    settings = resource.gcp_settings
    labels = {"instance_id": str(instance["id"]), "zone": str(settings.zone)}
    target = target_of(resource)
    cpu = latest_value(settings, target, grant, CPU_METRIC, labels)
    memory = latest_value(settings, target, grant, MEMORY_METRIC, labels, {"state": "used"})
    return {
        "cpu_used_pct": None if cpu is None else round(100.0 * cpu, 2),
        "memory_used_pct": None if memory is None else round(memory, 2),
    }
