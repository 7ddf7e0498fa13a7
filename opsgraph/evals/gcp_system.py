"""A scenario's GCP instances: the local GCP emulator holding them, and the real servers behind their data planes.

No GCP project is reachable from a test machine, so a scenario's `started_by: gcp-emulator`
servers are instances of `opsgraph.gcp_emulator` — a local HTTP/gRPC server that speaks the
subset of Google's REST and Monitoring APIs OpsGraph uses, and that Google's own client
libraries talk to. A Memorystore or Cloud SQL instance has a data plane OpsGraph reaches
directly: here a real redis-server or PostgreSQL that the harness starts (as an outside
server), which the emulator reports as the instance's endpoint and reads its metrics from.
The inventory names that endpoint in `connection`, as a user reaching a private IP or the
Cloud SQL Auth Proxy would.

OpsGraph authenticates with a service-account key file the emulator issued (the real
google-auth JWT flow against the emulator's token endpoint), exactly as with a real key.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsgraph.evals.scenario import EmulatedCompute, EmulatedRedis, EmulatedSql, ServerSpec
from opsgraph.gcp_emulator import (
    ComputeInstanceSpec,
    EmulatorConfig,
    GcpEmulator,
    RedisInstanceSpec,
    SqlInstanceSpec,
)
from opsgraph.tools.environments.gcp import clients

PROJECT = "opsgraph-emulated"
REGION = "us-central1"
ZONE = "us-central1-a"
# The emulator backs each "GB" of Memorystore with this much of the real redis-server's maxmemory,
# so a scenario can fill an instance in milliseconds (the ratios, not the bytes, are what matter).
BYTES_PER_GB = 32 * 1024 * 1024
# Operations finish quickly here; real ones take minutes (the tools' deadline is the inventory's).
OPERATION_DELAY_S = 0.3


@dataclass
class GcpInstances:
    """The GCP servers of one scenario, collected before the emulator starts."""

    compute: list[ComputeInstanceSpec] = field(default_factory=list)
    redis: list[RedisInstanceSpec] = field(default_factory=list)
    sql: list[SqlInstanceSpec] = field(default_factory=list)
    # name -> the inventory entry's `connection` (the data plane) and the scenario's own inventory keys
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, server: ServerSpec, data_plane: dict[str, Any] | None, password: str | None = None) -> None:
        """One GCP server; `data_plane` is the inventory connection of the real server behind it."""
        settings = server.emulated_settings()
        entry: dict[str, Any] = {"name": server.name, "kind": server.kind, "environment": "gcp"}
        location: dict[str, str]
        if isinstance(settings, EmulatedCompute):
            self.compute.append(
                ComputeInstanceSpec(
                    zone=ZONE,
                    name=server.name,
                    machine_type=settings.machine_type,
                    status="RUNNING",
                    memory_used_pct=settings.memory_used_pct,
                    cpu_used_pct=settings.cpu_used_pct,
                    local_ssd=settings.local_ssd,
                )
            )
            location = {"zone": ZONE}
        elif isinstance(settings, EmulatedRedis):
            assert data_plane is not None  # a Memorystore instance always has one
            self.redis.append(
                RedisInstanceSpec(
                    region=REGION,
                    name=server.name,
                    tier=settings.tier,
                    memory_size_gb=settings.memory_size_gb,
                    host=data_plane["host"],
                    port=data_plane["port"],
                    bytes_per_gb=BYTES_PER_GB,
                )
            )
            location = {"region": REGION}
        elif isinstance(settings, EmulatedSql):
            assert data_plane is not None
            self.sql.append(
                SqlInstanceSpec(
                    name=server.name,
                    region=REGION,
                    tier=settings.tier,
                    database_version="POSTGRES_15",
                    host=data_plane["host"],
                    port=data_plane["port"],
                    user=data_plane.get("user") or "postgres",
                    database="postgres",
                    password=password,
                )
            )
            location = {"region": REGION}
        else:
            raise ValueError(f"{server.name}: {server.kind} is not a GCP kind")
        if data_plane is not None:
            entry["connection"] = data_plane
        entry["gcp"] = {"project": PROJECT, **location}
        self.entries[server.name] = entry

    def __bool__(self) -> bool:
        return bool(self.entries)

    def start(self, folder: Path, cleanup: ExitStack) -> dict[str, dict[str, Any]]:
        """Start the emulator with these instances; returns each server's inventory entry, reaching it."""
        config = EmulatorConfig(
            project=PROJECT, operation_delay_s=OPERATION_DELAY_S, compute=self.compute, redis=self.redis, sql=self.sql
        )
        emulator = cleanup.enter_context(GcpEmulator(config, folder))
        clients.preload()  # seconds of imports, paid before the fault exists: MTTD measures detection, not imports
        key_file = emulator.key_file(name="opsgraph-eval")
        reach = {
            "credentials_file": str(key_file.resolve()),
            "api_endpoint": emulator.api_endpoint,
            "monitoring_endpoint": emulator.monitoring_endpoint,
            "operation_timeout_s": 30.0,
        }
        return {name: {**entry, "gcp": {**entry["gcp"], **reach}} for name, entry in self.entries.items()}
