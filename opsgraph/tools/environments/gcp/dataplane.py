"""The server behind a managed instance: a Redis behind Memorystore, a PostgreSQL behind Cloud SQL.

The data plane is a copy of the inventory resource as a plain `redis` or `postgres`
resource (environment `external`, lifecycle none: the API is the only way to restart
it), so that the code that already reads and fixes those servers — the kept Redis
connection, INFO, postgres_info, terminating sessions, the data fingerprints — runs on
it unchanged. Where it is reached:

- Memorystore: the inventory's `connection` when it gives a port (a tunnel, a proxy),
  else the instance's `host`:`port` from the API. AUTH, when enabled, is the
  inventory's `password_env`.
- Cloud SQL: the inventory's `connection` (host, port, user, database, password_env),
  e.g. the Cloud SQL Auth Proxy, when it gives a port; else the instance's PRIMARY
  address on 5432.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.errors import ToolError
from opsgraph.tools.inventory import Connection, Environment, Resource, ResourceKind

POSTGRES_PORT = 5432


def _plane(resource: Resource, kind: ResourceKind, connection: Connection) -> Resource:
    return resource.model_copy(
        update={"kind": kind, "environment": Environment.EXTERNAL, "gcp": None, "connection": connection}
    )


def redis_data_plane(resource: Resource, instance: dict[str, Any] | None) -> Resource:
    """The Memorystore instance's Redis; `instance` (its REST JSON) is needed only when the inventory gives no port."""
    if resource.connection.port:
        return _plane(resource, ResourceKind.REDIS, resource.connection)
    host, port = (instance or {}).get("host"), (instance or {}).get("port")
    if not host or not port:
        raise ToolError(f"{target_of(resource)} has no Redis endpoint yet (state {(instance or {}).get('state')})")
    return _plane(
        resource, ResourceKind.REDIS, resource.connection.model_copy(update={"host": host, "port": int(port)})
    )


def postgres_data_plane(resource: Resource, instance: dict[str, Any] | None) -> Resource:
    """The Cloud SQL instance's PostgreSQL; `instance` is needed only when the inventory gives no port."""
    if resource.connection.port:
        return _plane(resource, ResourceKind.POSTGRES, resource.connection)
    addresses = (instance or {}).get("ip_addresses", [])
    primary = next((entry["ip_address"] for entry in addresses if entry.get("type") == "PRIMARY"), None)
    if primary is None:
        raise ToolError(
            f"{target_of(resource)} has no PRIMARY (public) IP address; give the inventory a connection "
            "(host and port, e.g. of the Cloud SQL Auth Proxy)"
        )
    return _plane(
        resource, ResourceKind.POSTGRES, resource.connection.model_copy(update={"host": primary, "port": POSTGRES_PORT})
    )
