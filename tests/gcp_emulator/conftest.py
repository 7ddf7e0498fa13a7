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
from outside_postgres import OutsidePostgres, outside_postgres
from outside_redis import OutsideRedis, outside_redis

from gcp_emulator.emulated import emulator_config
from opsgraph.gcp_emulator import GcpEmulator


@pytest.fixture(autouse=True)
def no_access_boundary_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        CredentialsWithRegionalAccessBoundary, "_maybe_start_regional_access_boundary_refresh", lambda *_: None
    )


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
