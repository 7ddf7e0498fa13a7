"""`GcpEmulator`: the emulated project's servers, started together and stopped together.

It binds the REST server and the gRPC monitoring server on free (or given) loopback
ports, gives each backing redis-server its Memorystore maxmemory and reads each backing
PostgreSQL's max_connections, then serves. Tests and the `--gcp-emulator` demo point
Google's real client libraries at `api_endpoint` / `monitoring_endpoint` with a key
file from `key_file`.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from opsgraph.gcp_emulator.admin import AdminApi
from opsgraph.gcp_emulator.auth import Authority
from opsgraph.gcp_emulator.cloudsql import CloudSql
from opsgraph.gcp_emulator.compute import ComputeEngine
from opsgraph.gcp_emulator.config import EmulatorConfig
from opsgraph.gcp_emulator.gate import EmulatorRequest, Gate
from opsgraph.gcp_emulator.memorystore import Memorystore
from opsgraph.gcp_emulator.monitoring import MonitoringServer
from opsgraph.gcp_emulator.rest import RestServer

Kind = Literal["compute", "redis", "sql"]
logger = logging.getLogger(__name__)


class GcpEmulator:
    """A local emulator of one GCP project: Compute Engine, Memorystore, Cloud SQL Admin, Cloud Monitoring."""

    def __init__(self, config: EmulatorConfig, folder: Path, *, port: int = 0, monitoring_port: int = 0) -> None:
        self.config = config
        self.folder = folder
        lock = threading.RLock()
        self._authority = Authority(config.project, config.token_ttl_s)
        self._gate = Gate(self._authority, config.project)
        self._compute = ComputeEngine(config.project, config.compute, lock, config.operation_delay_s)
        self._redis = Memorystore(config.project, config.redis, lock, config.operation_delay_s)
        self._sql = CloudSql(config.project, config.sql, lock, config.operation_delay_s)
        self._rest = RestServer(self._gate, lock, port)
        try:
            self._monitoring = MonitoringServer(
                self._gate, [self._compute.series, self._redis.series, self._sql.series], monitoring_port
            )
        except OSError:
            self._rest.stop()
            raise
        self._compute.base_url = self._sql.base_url = self._rest.url
        self._rest.routes = [*self._compute.routes(), *self._redis.routes(), *self._sql.routes()]
        self._rest.admin = AdminApi(self).handle

    # ---- lifecycle

    def start(self) -> GcpEmulator:
        """Drive the backing servers into their emulated configuration, then serve; BackendError if one is down."""
        try:
            self._redis.start()
            self._sql.start()
            self._rest.start()
            self._monitoring.start()
        except BaseException:
            self.stop()
            raise
        logger.info("GCP emulator for project %s: REST %s, monitoring gRPC %s",
                    self.config.project, self.api_endpoint, self.monitoring_endpoint)  # fmt: skip
        return self

    def stop(self) -> None:
        self._rest.stop()
        self._monitoring.stop()
        for service in (self._compute, self._redis, self._sql):
            service.close()

    def __enter__(self) -> GcpEmulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ---- where the clients go

    @property
    def api_endpoint(self) -> str:
        """`http://127.0.0.1:<port>`: Compute Engine, Memorystore, Cloud SQL Admin and the token endpoint."""
        return self._rest.url

    url = api_endpoint

    @property
    def monitoring_endpoint(self) -> str:
        """`127.0.0.1:<port>`: gRPC MetricService over local credentials."""
        return self._monitoring.endpoint

    def key_file(self, name: str = "opsgraph-sa", permissions: frozenset[str] = frozenset({"*"})) -> Path:
        """Write a service-account key file for identity `name` holding exactly `permissions` ("*" = all)."""
        key = self._authority.create_key(name, permissions, token_uri=f"{self.api_endpoint}/token")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}-emulator-key.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(key, indent=2))
        return path

    # ---- what tests and fault injectors steer and read

    def set_guest(self, zone: str, name: str, memory_used_pct: float | None = None,
                  cpu_used_pct: float | None = None) -> None:  # fmt: skip
        """The VM's guest metrics as its agent reports them (until a reset or start restores the baselines)."""
        self._compute.set_guest(zone, name, memory_used_pct, cpu_used_pct)

    def guest(self, zone: str, name: str) -> dict[str, Any]:
        """What the VM's guest is doing now (status, memory and CPU use): the evals' own look at a VM."""
        return self._compute.guest(zone, name)

    def set_sql_metrics(self, name: str, cpu_utilization: float | None = None,
                        disk_utilization: float | None = None) -> None:  # fmt: skip
        """The emulated database/cpu/utilization and database/disk/utilization of a Cloud SQL instance (0..1)."""
        self._sql.set_metrics(name, cpu_utilization, disk_utilization)

    def fail_next(self, permission_or_method: str, status: int, count: int = 1, message: str | None = None) -> None:
        """The next `count` calls needing that permission (or that method id) get HTTP `status` in Google's format."""
        self._gate.fail_next(permission_or_method, status, count, message)

    def issued_tokens(self) -> list[str]:
        """Every bearer credential handed out (/token) or accepted (self-signed JWTs): what must never leak."""
        return self._authority.issued()

    def requests(self) -> list[EmulatorRequest]:
        return self._gate.requests()

    def instance(self, kind: Kind, name: str) -> dict[str, Any]:
        """The emulated resource's current JSON, as its API's get returns it; KeyError if there is none."""
        services: dict[Kind, ComputeEngine | Memorystore | CloudSql] = {
            "compute": self._compute, "redis": self._redis, "sql": self._sql,
        }  # fmt: skip
        found = services[kind].instance(name)
        if found is None:
            raise KeyError(f"no emulated {kind} instance {name!r}")
        return found
