"""Emulated Cloud Monitoring: gRPC `google.monitoring.v3.MetricService/ListTimeSeries` on 127.0.0.1.

Served with grpc.local_server_credentials, so a client reaches it the way it reaches
Google (a secure channel carrying call credentials), here with
grpc.local_channel_credentials. The `authorization` metadata is checked by the same
Gate as the REST API (UNAUTHENTICATED / PERMISSION_DENIED, `monitoring.timeSeries.list`).
The filter understands conjunctions of `metric.type = "X"`, `resource.type = "T"`,
`resource.labels.K = "V"` and `metric.labels.K = "V"`; each matching series carries one
GAUGE point, now.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent import futures

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints
from google.api import metric_pb2, monitored_resource_pb2
from google.cloud.monitoring_v3 import types

from opsgraph.gcp_emulator.errors import ApiError
from opsgraph.gcp_emulator.gate import EmulatorRequest, Gate
from opsgraph.gcp_emulator.metrics import Series
from opsgraph.gcp_emulator.operations import utc_now

SERVICE = "google.monitoring.v3.MetricService"
_METHOD_PATH = f"/{SERVICE}/ListTimeSeries"
_PERMISSION = "monitoring.timeSeries.list"
_CONJUNCT = re.compile(r'\s*(metric\.type|resource\.type|(?:metric|resource)\.labels?\.\w+)\s*=\s*"([^"]*)"\s*')
_GAUGE = metric_pb2.MetricDescriptor.MetricKind.GAUGE
_VALUE_TYPES = {
    "DOUBLE": metric_pb2.MetricDescriptor.ValueType.DOUBLE,
    "INT64": metric_pb2.MetricDescriptor.ValueType.INT64,
}

Source = Callable[[str], list[Series]]
logger = logging.getLogger(__name__)


def parse_filter(text: str) -> dict[str, str]:
    """`metric.type = "X" AND resource.labels.zone = "Z"` -> {"metric.type": "X", "resource.labels.zone": "Z"}."""
    conditions: dict[str, str] = {}
    for conjunct in re.split(r"\s+AND\s+", text.strip()):
        found = _CONJUNCT.fullmatch(conjunct)
        if found is None:
            raise ApiError(400, f"The emulator cannot parse the filter term {conjunct.strip()!r}: it understands "
                                '`metric.type = "X"` and `resource.labels.KEY = "V"` joined by AND.')  # fmt: skip
        key = re.sub(r"^(metric|resource)\.label\.", r"\1.labels.", found.group(1))
        conditions[key] = found.group(2)
    if "metric.type" not in conditions:
        raise ApiError(400, "Field filter had an invalid value: a filter must name exactly one metric.type.")
    return conditions


def _matches(series: Series, conditions: dict[str, str]) -> bool:
    fields = {"metric.type": series.metric_type, "resource.type": series.resource_type}
    fields |= {f"metric.labels.{key}": value for key, value in series.metric_labels.items()}
    fields |= {f"resource.labels.{key}": value for key, value in series.resource_labels.items()}
    return all(fields.get(key) == value for key, value in conditions.items())


def _time_series(series: Series, with_points: bool) -> types.TimeSeries:
    now = utc_now()
    value = (
        types.TypedValue(double_value=float(series.value))
        if series.value_type == "DOUBLE"
        else types.TypedValue(int64_value=int(series.value))
    )
    return types.TimeSeries(
        metric=metric_pb2.Metric(type=series.metric_type, labels=series.metric_labels),
        resource=monitored_resource_pb2.MonitoredResource(type=series.resource_type, labels=series.resource_labels),
        metric_kind=_GAUGE,
        value_type=_VALUE_TYPES[series.value_type],
        points=[types.Point(interval=types.TimeInterval(start_time=now, end_time=now), value=value)]
        if with_points
        else [],
    )


class MonitoringServer:
    """The gRPC server; `sources` turn a metric type into the series the emulated services report."""

    def __init__(self, gate: Gate, sources: list[Source], port: int = 0) -> None:
        self._gate = gate
        self._sources = sources
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="gcp-emulator-grpc"))
        handler = grpc.unary_unary_rpc_method_handler(
            self._list_time_series,
            request_deserializer=types.ListTimeSeriesRequest.deserialize,
            response_serializer=types.ListTimeSeriesResponse.serialize,
        )
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"ListTimeSeries": handler})]
        )
        self.port = self._server.add_secure_port(f"127.0.0.1:{port}", grpc.local_server_credentials())
        if not self.port:
            raise OSError(f"the GCP emulator's monitoring server cannot listen on 127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=0).wait()

    def _list_time_series(
        self, request: types.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> types.ListTimeSeriesResponse:
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        project = request.name.removeprefix("projects/")
        principal: str | None = None
        try:
            account = self._gate.authenticate(metadata.get("authorization"))
            principal = account.email
            self._gate.authorize(account, _PERMISSION, _METHOD_PATH.lstrip("/"), request.name, project)
            conditions = parse_filter(request.filter)
        except ApiError as error:
            self._gate.record(EmulatorRequest("gRPC", _METHOD_PATH, _PERMISSION, error.code, principal))
            context.abort(error.grpc_code, error.message)
        with_points = request.view != types.ListTimeSeriesRequest.TimeSeriesView.HEADERS
        found = [
            _time_series(series, with_points)
            for source in self._sources
            for series in source(conditions["metric.type"])
            if _matches(series, conditions)
        ]
        self._gate.record(EmulatorRequest("gRPC", _METHOD_PATH, _PERMISSION, 200, principal))
        return types.ListTimeSeriesResponse(time_series=found)
