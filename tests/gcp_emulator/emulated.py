"""What the GCP emulator tests share: the emulated project's names, its config, credentials from a key file."""

from __future__ import annotations

from pathlib import Path

from google.oauth2 import service_account
from outside_postgres import OutsidePostgres
from outside_redis import OutsideRedis

from opsgraph.gcp_emulator import (
    ComputeInstanceSpec,
    EmulatorConfig,
    RedisInstanceSpec,
    SqlInstanceSpec,
)

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
PROJECT = "opsgraph-emulated"
ZONE = "us-central1-a"
REGION = "us-central1"
BYTES_PER_GB = 8 * 1024 * 1024


def credentials(key_file: Path) -> service_account.Credentials:
    loaded: service_account.Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(key_file), scopes=SCOPES
    )
    return loaded


def emulator_config(redis_server: OutsideRedis, postgres: OutsidePostgres, **overrides: object) -> EmulatorConfig:
    """Four plain VMs and one with a local SSD; a STANDARD_HA and a BASIC cache on one redis-server; one database."""
    settings: dict[str, object] = {
        "project": PROJECT,
        "operation_delay_s": 0.3,
        "compute": [
            ComputeInstanceSpec(zone=ZONE, name=name, memory_used_pct=35.0, cpu_used_pct=10.0)
            for name in ("web-1", "web-2", "web-3", "web-4")
        ]
        + [ComputeInstanceSpec(zone=ZONE, name="scratch-1", local_ssd=True)],
        "redis": [
            RedisInstanceSpec(region=REGION, name=name, tier=tier, port=redis_server.port, bytes_per_gb=BYTES_PER_GB)
            for name, tier in (("cache", "STANDARD_HA"), ("basic-cache", "BASIC"))
        ],
        "sql": [SqlInstanceSpec(name="orders-db", region=REGION, port=postgres.port, password=postgres.password)],
    }
    return EmulatorConfig.model_validate({**settings, **overrides})
