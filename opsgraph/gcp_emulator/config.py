"""What the GCP emulator emulates: one project and its Compute Engine, Memorystore and Cloud SQL instances.

The same pydantic models are the Python API (`EmulatorConfig(...)`) and the schema of
the YAML file that `python -m opsgraph.gcp_emulator --config` reads, so a bad file is
refused with pydantic's own account of what is wrong. Memorystore and Cloud SQL
instances are backed by REAL local servers (a redis-server, a PostgreSQL) that the
caller starts: the emulator plays Google's control plane in front of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # GCP resource names: lower-case, digits, hyphens
_ZONE = r"^[a-z]+-[a-z]+[0-9]+-[a-z]$"
_REGION = r"^[a-z]+-[a-z]+[0-9]+$"

ComputeStatus = Literal["PROVISIONING", "STAGING", "RUNNING", "STOPPING", "TERMINATED"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ComputeInstanceSpec(_Spec):
    """One emulated VM; its guest metrics (as the Ops Agent would report them) start at the baselines."""

    zone: str = Field(pattern=_ZONE)
    name: str = Field(pattern=_NAME, max_length=63)
    machine_type: str = "e2-medium"
    status: ComputeStatus = "RUNNING"
    memory_used_pct: float = Field(default=35.0, ge=0, le=100)
    cpu_used_pct: float = Field(default=10.0, ge=0, le=100)
    local_ssd: bool = False


class RedisInstanceSpec(_Spec):
    """One Memorystore instance in front of a real redis-server at host:port.

    `bytes_per_gb` scales the emulated size down to what a test machine holds: the
    emulator sets the backing server's maxmemory to memory_size_gb * bytes_per_gb.
    """

    region: str = Field(pattern=_REGION)
    name: str = Field(pattern=_NAME, max_length=40)
    tier: Literal["BASIC", "STANDARD_HA"] = "BASIC"
    memory_size_gb: int = Field(default=1, ge=1, le=300)
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    password: str | None = None
    bytes_per_gb: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024)


class SqlInstanceSpec(_Spec):
    """One Cloud SQL for PostgreSQL instance in front of a real PostgreSQL at host:port.

    `user` must be a superuser of that server: the emulator reads its settings and
    sessions and, on restart, terminates the other client backends.
    """

    name: str = Field(pattern=_NAME, max_length=98)
    region: str = Field(default="us-central1", pattern=_REGION)
    tier: str = "db-custom-1-3840"
    database_version: str = Field(default="POSTGRES_15", pattern=r"^POSTGRES_[0-9]+$")
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    user: str = "postgres"
    password: str | None = None
    database: str = "postgres"
    cpu_utilization: float = Field(default=0.05, ge=0, le=1)
    disk_utilization: float = Field(default=0.2, ge=0, le=1)


class EmulatorConfig(_Spec):
    """The emulated project; resource names must be unique per kind (as `GcpEmulator.instance` looks them up)."""

    project: str = Field(default="opsgraph-emulated", pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
    operation_delay_s: float = Field(default=0.3, ge=0, le=600)
    token_ttl_s: int = Field(default=3600, ge=1, le=43200)
    compute: list[ComputeInstanceSpec] = Field(default_factory=list)
    redis: list[RedisInstanceSpec] = Field(default_factory=list)
    sql: list[SqlInstanceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> EmulatorConfig:
        for kind, specs in (("compute", self.compute), ("redis", self.redis), ("sql", self.sql)):
            names = [spec.name for spec in specs]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind} instance names must be unique, repeated: {', '.join(duplicates)}")
        return self
