"""One emulated Cloud Monitoring time series: what a service reports, before it becomes a proto."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Series:
    """A GAUGE series with one point now: metric type and labels, monitored resource, value."""

    metric_type: str
    metric_labels: dict[str, str]
    resource_type: str
    resource_labels: dict[str, str]
    value: float | int
    value_type: Literal["DOUBLE", "INT64"] = "DOUBLE"
