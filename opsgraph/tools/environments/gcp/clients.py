"""Google's API clients, imported when first needed and kept per (service, endpoint, credentials).

The client libraries are imported inside these functions, never at module import: they
take seconds to load (compute_v1 alone ~8 s on a small machine) and a CLI that watches
no GCP resource must not pay for them. `preload` imports them ahead of time, for a
long-running watcher that wants its first GCP probe to be as quick as the next.

Compute Engine, Memorystore and Cloud SQL Admin go over REST; Cloud Monitoring over
gRPC, its only transport. `gcp.api_endpoint` / `gcp.monitoring_endpoint` point them
at a private endpoint or the GCP emulator. A loopback `monitoring_endpoint` (the
emulator's) is reached with gRPC's local channel credentials, any other over TLS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from opsgraph.tools.environments.gcp.credentials import credentials_for
from opsgraph.tools.inventory import GcpSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud.compute_v1 import InstancesClient, ZoneOperationsClient
    from google.cloud.monitoring_v3 import MetricServiceClient
    from google.cloud.redis_v1 import CloudRedisClient
    from google.cloud.sqladmin_v1beta4 import SqlInstancesServiceClient, SqlOperationsServiceClient

# A read is a probe's: it must answer within the probe's deadline. A mutating call only starts an
# operation (the wait for it is `operations`'): it answers quickly too.
READ_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 15.0

_LOOPBACK = ("localhost",)

ClientT = TypeVar("ClientT")
_CLIENTS: dict[tuple[str, str | None, int], Any] = {}
_LOCK = threading.Lock()


def _kept(
    service: str, endpoint: str | None, settings: GcpSettings, build: Callable[[Credentials], ClientT]
) -> ClientT:
    credentials = credentials_for(settings)  # kept per key file, so its identity names it
    key = (service, endpoint, id(credentials))
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = build(credentials)
        return client  # built by `build` for this key


def _options(settings: GcpSettings) -> dict[str, str] | None:
    return {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None


def compute_instances(settings: GcpSettings) -> InstancesClient:
    def build(credentials: Credentials) -> InstancesClient:
        from google.cloud import compute_v1

        return compute_v1.InstancesClient(credentials=credentials, transport="rest", client_options=_options(settings))

    return _kept("compute.instances", settings.api_endpoint, settings, build)


def zone_operations(settings: GcpSettings) -> ZoneOperationsClient:
    def build(credentials: Credentials) -> ZoneOperationsClient:
        from google.cloud import compute_v1

        return compute_v1.ZoneOperationsClient(
            credentials=credentials, transport="rest", client_options=_options(settings)
        )

    return _kept("compute.zoneOperations", settings.api_endpoint, settings, build)


def memorystore(settings: GcpSettings) -> CloudRedisClient:
    def build(credentials: Credentials) -> CloudRedisClient:
        from google.cloud import redis_v1

        return redis_v1.CloudRedisClient(credentials=credentials, transport="rest", client_options=_options(settings))

    return _kept("redis", settings.api_endpoint, settings, build)


def sql_instances(settings: GcpSettings) -> SqlInstancesServiceClient:
    def build(credentials: Credentials) -> SqlInstancesServiceClient:
        from google.cloud import sqladmin_v1beta4

        return sqladmin_v1beta4.SqlInstancesServiceClient(
            credentials=credentials, transport="rest", client_options=_options(settings)
        )

    return _kept("sqladmin.instances", settings.api_endpoint, settings, build)


def sql_operations(settings: GcpSettings) -> SqlOperationsServiceClient:
    def build(credentials: Credentials) -> SqlOperationsServiceClient:
        from google.cloud import sqladmin_v1beta4

        return sqladmin_v1beta4.SqlOperationsServiceClient(
            credentials=credentials, transport="rest", client_options=_options(settings)
        )

    return _kept("sqladmin.operations", settings.api_endpoint, settings, build)


def metrics(settings: GcpSettings) -> MetricServiceClient:
    """Cloud Monitoring: Google's endpoint with its default transport, else a channel to `monitoring_endpoint`."""
    endpoint = settings.monitoring_endpoint

    def build(credentials: Credentials) -> MetricServiceClient:
        from google.cloud import monitoring_v3

        if endpoint is None:
            return monitoring_v3.MetricServiceClient(credentials=credentials)
        import grpc  # type: ignore[import-untyped]
        from google.auth.transport.grpc import secure_authorized_channel
        from google.auth.transport.requests import Request
        from google.cloud.monitoring_v3.services.metric_service.transports.grpc import MetricServiceGrpcTransport

        host = endpoint.rpartition(":")[0]
        local = host in _LOOPBACK or host.startswith("127.")
        transport = grpc.local_channel_credentials() if local else grpc.ssl_channel_credentials()
        channel = secure_authorized_channel(  # type: ignore[no-untyped-call]
            credentials, Request(), endpoint, ssl_credentials=transport
        )
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))

    return _kept("monitoring", endpoint, settings, build)


def preload() -> None:
    """Import the client libraries now (seconds), so that the first GCP call does not pay for it."""
    from google.cloud import compute_v1, monitoring_v3, redis_v1, sqladmin_v1beta4  # noqa: F401
