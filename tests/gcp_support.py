"""A GCP world for tests: the GCP emulator in front of a private redis-server and PostgreSQL, and an inventory.

    with gcp_world(tmp_path) as world:
        world.context()                  # a ToolContext over world.inventory
        world.resource("web-1")          # gcp_compute (RUNNING), like web-2; resize-1 may be resized
        world.resource("scratch-1")      # gcp_compute with a local SSD
        world.resource("cache")          # gcp_redis, STANDARD_HA, data plane from the API (no port)
        world.resource("basic-cache")    # gcp_redis, BASIC
        world.resource("orders-db")      # gcp_sql, data plane through its connection (as the Auth Proxy)
        world.emulator.fail_next("compute.instances.reset", 409)
        world.with_key("reader", {"compute.instances.get"})   # the inventory, authenticated as another identity

The instances' names are the resources' names; every resource allows destructive steps,
resizes to RESIZE_TO, tiers up to SQL_TIER_TO and memory up to 4 GB. `backing=False`
starts no redis-server or PostgreSQL (Compute Engine only), for tests that need neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from outside_postgres import OutsidePostgres, outside_postgres
from outside_redis import OutsideRedis, outside_redis

from opsgraph.evals.gcp_system import PROJECT as PROJECT  # re-exported: the tests name the same place
from opsgraph.evals.gcp_system import REGION as REGION
from opsgraph.evals.gcp_system import ZONE as ZONE
from opsgraph.gcp_emulator import (
    ComputeInstanceSpec,
    EmulatorConfig,
    GcpEmulator,
    RedisInstanceSpec,
    SqlInstanceSpec,
)
from opsgraph.tools.inventory import Inventory, Resource, parse_inventory
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.spec import ToolContext

MACHINE_TYPE = "e2-medium"
RESIZE_TO = "e2-standard-2"
SQL_TIER = "db-custom-1-3840"
SQL_TIER_TO = "db-custom-2-7680"
BYTES_PER_GB = 8 * 1024 * 1024  # 1 emulated GB = 8 MiB of the backing redis-server's maxmemory
SQL_PASSWORD_ENV = "OPSGRAPH_TEST_CLOUDSQL_PASSWORD"
COMPUTE = ("web-1", "web-2", "resize-1")


@dataclass
class GcpWorld:
    """A started emulator, its backing servers (None with backing=False) and an inventory that reaches them."""

    emulator: GcpEmulator
    redis: OutsideRedis | None
    postgres: OutsidePostgres | None
    key_file: Path
    folder: Path
    entries: list[dict[str, Any]]

    @property
    def inventory(self) -> Inventory:
        return parse_inventory({"version": 1, "resources": self.entries}, "gcp-world")

    def resource(self, name: str) -> Resource:
        return self.inventory.get(name)

    def context(self, inventory: Inventory | None = None) -> ToolContext:
        return ToolContext(inventory=inventory or self.inventory, state_dir=self.folder / "state")

    def write_inventory(self, path: Path | None = None) -> Path:
        """The inventory as a file (e.g. for the CLI or a graph Context)."""
        target = path or self.folder / "opsgraph.yaml"
        target.write_text(yaml.safe_dump({"version": 1, "resources": self.entries}))
        return target

    def with_key(self, name: str, permissions: set[str]) -> Inventory:
        """The same inventory, authenticated as another service account that holds only `permissions`."""
        key = self.emulator.key_file(name, frozenset(permissions))
        return self.with_gcp(credentials_file=str(key))

    def with_gcp(self, **gcp: Any) -> Inventory:
        """The same inventory with these keys of every resource's `gcp` section replaced."""
        entries = [{**entry, "gcp": {**entry["gcp"], **gcp}} for entry in self.entries]
        return parse_inventory({"version": 1, "resources": entries}, "gcp-world")


def emulator_config(redis: OutsideRedis | None, postgres: OutsidePostgres | None, delay_s: float) -> EmulatorConfig:
    compute = [ComputeInstanceSpec(zone=ZONE, name=name, machine_type=MACHINE_TYPE) for name in COMPUTE]
    compute.append(ComputeInstanceSpec(zone=ZONE, name="scratch-1", machine_type=MACHINE_TYPE, local_ssd=True))
    redis_specs, sql_specs = [], []
    if redis is not None:
        redis_specs = [
            RedisInstanceSpec(
                region=REGION, name=name, tier=tier, memory_size_gb=1, port=redis.port, bytes_per_gb=BYTES_PER_GB
            )
            for name, tier in (("cache", "STANDARD_HA"), ("basic-cache", "BASIC"))
        ]
    if postgres is not None:
        sql_specs = [
            SqlInstanceSpec(
                name="orders-db", region=REGION, tier=SQL_TIER, port=postgres.port, password=postgres.password
            )
        ]
    return EmulatorConfig(project=PROJECT, operation_delay_s=delay_s, compute=compute, redis=redis_specs, sql=sql_specs)


def inventory_entries(
    emulator: GcpEmulator, key_file: Path, redis: OutsideRedis | None, postgres: OutsidePostgres | None
) -> list[dict[str, Any]]:
    def gcp(**where: str) -> dict[str, Any]:
        return {
            "project": PROJECT,
            **where,
            "credentials_file": str(key_file),
            "api_endpoint": emulator.api_endpoint,
            "monitoring_endpoint": emulator.monitoring_endpoint,
            "operation_timeout_s": 30.0,
        }

    policy = {
        "max_risk": "destructive",
        "machine_types": [RESIZE_TO],
        "sql_tiers": [SQL_TIER_TO],
        "max_memory_mb": 4096,
    }
    entries: list[dict[str, Any]] = [
        {"name": name, "kind": "gcp_compute", "environment": "gcp", "gcp": gcp(zone=ZONE), "policy": policy}
        for name in (*COMPUTE, "scratch-1")
    ]
    if redis is not None:
        entries += [
            {"name": name, "kind": "gcp_redis", "environment": "gcp", "gcp": gcp(region=REGION), "policy": policy}
            for name in ("cache", "basic-cache")
        ]
    if postgres is not None:
        connection = {
            "host": "127.0.0.1",
            "port": postgres.port,
            "user": "postgres",
            "database": "postgres",
            "password_env": SQL_PASSWORD_ENV,
        }
        entries.append(
            {
                "name": "orders-db",
                "kind": "gcp_sql",
                "environment": "gcp",
                "gcp": gcp(region=REGION),
                "connection": connection,
                "policy": policy,
            }
        )
    return entries


@contextmanager
def gcp_world(folder: Path, *, backing: bool = True, operation_delay_s: float = 0.2) -> Iterator[GcpWorld]:
    """Start everything in `folder`; stop it all afterwards (the SQL password variable is set meanwhile)."""
    with ExitStack() as stack:
        redis = stack.enter_context(outside_redis(folder / "memorystore")) if backing else None
        postgres = stack.enter_context(outside_postgres(folder / "cloudsql")) if backing else None
        config = emulator_config(redis, postgres, operation_delay_s)
        emulator = stack.enter_context(GcpEmulator(config, folder / "emulator"))
        key_file = emulator.key_file("opsgraph-sa", frozenset({"*"}))
        previous = os.environ.get(SQL_PASSWORD_ENV)
        if postgres is not None:
            os.environ[SQL_PASSWORD_ENV] = postgres.password
        try:
            yield GcpWorld(
                emulator, redis, postgres, key_file, folder, inventory_entries(emulator, key_file, redis, postgres)
            )
        finally:
            if previous is None:
                os.environ.pop(SQL_PASSWORD_ENV, None)
            else:
                os.environ[SQL_PASSWORD_ENV] = previous


def run(world: GcpWorld, tool: str, ctx: ToolContext | None = None, **args: Any) -> ToolOutcome:
    """One tool call through the runner (the guard, the data checks, redaction), as the executor makes it."""
    return run_tool(tool, args, ctx or world.context(), timeout_s=30)


def output(outcome: ToolOutcome) -> dict[str, Any]:
    assert outcome.ok, outcome.error
    assert outcome.output is not None
    return outcome.output


def mutating_calls(world: GcpWorld) -> list[str]:
    """Every call the emulator saw that could have changed something."""
    return [f"{r.method} {r.path}" for r in world.emulator.requests() if r.method != "GET"]
