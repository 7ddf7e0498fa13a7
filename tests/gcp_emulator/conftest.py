"""One GCP emulator for the module, in front of a private redis-server and a private PostgreSQL.

Clients are Google's real ones with service-account credentials from the emulator's
key files. google-auth (>= 2.60) would also look up each service account's Regional
Access Boundary at iamcredentials.googleapis.com in a background thread; nothing in
these tests may leave the machine, so that lookup is switched off here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import CredentialsWithRegionalAccessBoundary
from google.oauth2 import service_account
from outside_postgres import OutsidePostgres, outside_postgres
from outside_redis import OutsideRedis, outside_redis

from opsgraph.gcp_emulator import (
    ComputeInstanceSpec,
    EmulatorConfig,
    GcpEmulator,
    RedisInstanceSpec,
    SqlInstanceSpec,
)

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
PROJECT = "opsgraph-emulated"
ZONE = "us-central1-a"
REGION = "us-central1"
BYTES_PER_GB = 8 * 1024 * 1024


@pytest.fixture(autouse=True)
def no_access_boundary_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        CredentialsWithRegionalAccessBoundary, "_maybe_start_regional_access_boundary_refresh", lambda *_: None
    )


def credentials(key_file: Path) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(str(key_file), scopes=SCOPES)


@pytest.fixture(scope="module")
def backing_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideRedis]:
    with outside_redis(tmp_path_factory.mktemp("memorystore")) as server:
        yield server


@pytest.fixture(scope="module")
def backing_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsidePostgres]:
    with outside_postgres(tmp_path_factory.mktemp("cloudsql")) as server:
        with server.connect() as conn:
            conn.execute("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
        yield server


def emulator_config(backing_redis: OutsideRedis, backing_postgres: OutsidePostgres, **overrides: object) -> EmulatorConfig:
    settings: dict[str, object] = {
        "project": PROJECT,
        "operation_delay_s": 0.3,
        "compute": [
            ComputeInstanceSpec(zone=ZONE, name=name, memory_used_pct=35.0, cpu_used_pct=10.0)
            for name in ("web-1", "web-2", "web-3", "web-4")
        ]
        + [ComputeInstanceSpec(zone=ZONE, name="scratch-1", local_ssd=True)],
        "redis": [
            RedisInstanceSpec(region=REGION, name="cache", tier="STANDARD_HA", memory_size_gb=1,
                              port=backing_redis.port, bytes_per_gb=BYTES_PER_GB),
            RedisInstanceSpec(region=REGION, name="basic-cache", tier="BASIC", memory_size_gb=1,
                              port=backing_redis.port, bytes_per_gb=BYTES_PER_GB),
        ],  # fmt: skip
        "sql": [
            SqlInstanceSpec(name="orders-db", region=REGION, port=backing_postgres.port, password=backing_postgres.password)
        ],
    }
    return EmulatorConfig.model_validate({**settings, **overrides})


@pytest.fixture(scope="module")
def emulator(
    tmp_path_factory: pytest.TempPathFactory, backing_redis: OutsideRedis, backing_postgres: OutsidePostgres
) -> Iterator[GcpEmulator]:
    config = emulator_config(backing_redis, backing_postgres)
    with GcpEmulator(config, tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(scope="module")
def key_file(emulator: GcpEmulator) -> Path:
    return emulator.key_file("opsgraph-sa", frozenset({"*"}))
