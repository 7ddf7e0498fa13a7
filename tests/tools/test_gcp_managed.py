"""Memorystore and Cloud SQL tools and probes against the GCP emulator and the real servers behind it.

The emulator's Memorystore instances sit in front of a private redis-server (its maxmemory
is the instance's size), its Cloud SQL instance in front of a private PostgreSQL; the
data-plane tools reach those servers exactly as they reach any Redis or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
import redis
from gcp_support import BYTES_PER_GB, SQL_TIER, SQL_TIER_TO, GcpWorld, gcp_world, mutating_calls, output, run
from support import wait_for

from opsgraph.tools.data_safety import fingerprint
from opsgraph.tools.inventory import Resource, parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

APP_PASSWORD = "app-secret"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpWorld]:
    with gcp_world(tmp_path_factory.mktemp("gcp-managed")) as started:
        assert started.postgres is not None
        with started.postgres.connect() as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        yield started


def app_sessions(world: GcpWorld, count: int, stack: ExitStack) -> list[psycopg.Connection[Any]]:
    assert world.postgres is not None
    return [
        stack.enter_context(world.postgres.connect(user="app", password=APP_PASSWORD, application_name="orders-api"))
        for _ in range(count)
    ]


def with_thresholds(world: GcpWorld, name: str, **bands: dict[str, float]) -> Resource:
    entries = [{**entry, "thresholds": bands} if entry["name"] == name else entry for entry in world.entries]
    return parse_inventory({"version": 1, "resources": entries}).get(name)


# ---- Memorystore


def test_redis_info_merges_the_instance_and_the_data_plane(world: GcpWorld) -> None:
    assert world.redis is not None
    result = output(run(world, "gcp_redis_info", resource="cache"))
    assert result["instance"]["tier"] == "STANDARD_HA" and result["instance"]["memory_size_gb"] == 1
    assert result["data_plane"] == f"127.0.0.1:{world.redis.port}"  # from the API: the inventory gives no port
    assert result["maxmemory"] == BYTES_PER_GB and "used_memory" in result and "oom_rejected_writes" in result


def test_memory_pressure_then_a_resize_relieves_it(world: GcpWorld) -> None:
    assert world.redis is not None
    client = world.redis.client()
    blob = "x" * 100_000
    for index in range(200):  # 1 GB is 8 MiB here: full within ~80 writes
        try:
            client.set(f"fill:{index}", blob)
        except redis.OutOfMemoryError:
            break
    pressed = probe(world.resource("cache"))
    assert (pressed.health, pressed.symptom) == (Health.FAILED, "gcp_redis_memory_pressure"), pressed.reasons
    assert pressed.metrics["memory_size_gb"] == 1 and float(pressed.metrics["memory_used_pct"] or 0) >= 95

    before = mutating_calls(world)
    plan = output(run(world, "gcp_redis_scale_memory", resource="cache", memory_size_gb=2, dry_run=True))
    assert mutating_calls(world) == before
    assert plan["request"]["method"] == "PATCH" and plan["request"]["url"].endswith(
        "/instances/cache?updateMask=memorySizeGb"
    )
    assert plan["request"]["body"]["memorySizeGb"] == 2

    outcome = run(world, "gcp_redis_scale_memory", resource="cache", memory_size_gb=2)
    result = output(outcome)
    assert (result["before"]["memory_size_gb"], result["after"]["memory_size_gb"]) == (1, 2)
    assert result["operation"]["statuses"][-1] == "DONE"
    assert client.config_get("maxmemory")["maxmemory"] == str(2 * BYTES_PER_GB)  # the real server's limit
    assert outcome.data_check is not None and outcome.data_check.survived, outcome.data_check
    relieved = probe(world.resource("cache"))
    assert relieved.health is Health.HEALTHY, relieved.reasons


def test_scale_memory_only_raises_and_holds_the_ceiling(world: GcpWorld) -> None:
    lower = run(world, "gcp_redis_scale_memory", resource="cache", memory_size_gb=1)
    assert not lower.ok and "only raises" in str(lower.error)
    ceiling = run(world, "gcp_redis_scale_memory", resource="cache", memory_size_gb=5)
    assert not ceiling.ok
    assert str(ceiling.error).startswith("refused: memory_size_gb 5 (5120 MiB) is above this resource's policy ceiling")


def test_a_basic_instance_is_never_scaled_or_failed_over(world: GcpWorld) -> None:
    before = mutating_calls(world)
    scaled = run(world, "gcp_redis_scale_memory", resource="basic-cache", memory_size_gb=2)
    assert not scaled.ok and "flushes a Basic instance's data when it is scaled" in str(scaled.error)
    restarted = run(world, "gcp_redis_restart", resource="basic-cache")
    assert not restarted.ok and "Basic tier instance: it has no replica" in str(restarted.error)
    assert mutating_calls(world) == before


def test_restart_fails_over_and_keeps_the_keys(world: GcpWorld) -> None:
    assert world.redis is not None
    world.redis.client().set("survivor", "1")
    outcome = run(world, "gcp_redis_restart", resource="cache")
    result = output(outcome)
    assert result["before"]["current_location_id"] != result["after"]["current_location_id"]
    check = outcome.data_check
    assert check is not None and check.survived and check.before.facts["create_time"]
    assert check.before.facts["keys"] == check.after.facts["keys"] > 0


def test_flush_empties_the_data_plane_and_says_so(world: GcpWorld) -> None:
    assert world.redis is not None
    client = world.redis.client()
    keys = client.dbsize()
    plan = output(run(world, "gcp_redis_flush", resource="cache", dry_run=True))
    assert plan["keys"] == keys and plan["request"]["method"] == "FLUSHALL" and client.dbsize() == keys
    outcome = run(world, "gcp_redis_flush", resource="cache")
    assert output(outcome) == {"keys_deleted": keys}
    assert client.dbsize() == 0
    assert outcome.data_check is not None and outcome.data_check.survived  # emptying the keys is declared


# ---- Cloud SQL


def test_sql_probe_counts_backends_against_max_connections(world: GcpWorld) -> None:
    quiet = probe(world.resource("orders-db"))
    assert quiet.health is Health.HEALTHY
    assert quiet.metrics["max_connections"] == 100 and quiet.metrics["tier"] == SQL_TIER
    with ExitStack() as stack:
        app_sessions(world, 5, stack)
        tight = with_thresholds(world, "orders-db", connections_used_pct={"degraded": 2.0, "failed": 4.0})
        overloaded = probe(tight)
        assert (overloaded.health, overloaded.symptom) == (Health.FAILED, "gcp_sql_connection_overload")
        assert int(overloaded.metrics["connections"] or 0) >= 5
        assert overloaded.metrics["connections_used_pct"] == pytest.approx(
            100.0 * int(overloaded.metrics["connections"] or 0) / 100
        )


def test_sql_without_sessions_reports_no_data_not_a_verdict(world: GcpWorld) -> None:
    """The emulator, like Cloud SQL for a database nobody uses, writes no num_backends point."""
    wait_for(lambda: probe(world.resource("orders-db")).metrics["connections"] is None, "the app sessions to end")
    snapshot = probe(world.resource("orders-db"))
    assert snapshot.health is Health.HEALTHY
    assert "connections: no data (Cloud Monitoring has no point in the last 10 min)" in snapshot.reasons


def test_sql_cpu_and_disk_are_graded(world: GcpWorld) -> None:
    world.emulator.set_sql_metrics("orders-db", cpu_utilization=0.9, disk_utilization=0.97)
    try:
        snapshot = probe(world.resource("orders-db"))
        assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "gcp_sql_storage_pressure")
        assert snapshot.findings["gcp_sql_cpu_saturation"] is Health.DEGRADED
        assert (snapshot.metrics["cpu_used_pct"], snapshot.metrics["storage_used_pct"]) == (90.0, 97.0)
    finally:
        world.emulator.set_sql_metrics("orders-db", cpu_utilization=0.05, disk_utilization=0.2)


def test_sql_info_merges_the_instance_and_postgres_info(world: GcpWorld) -> None:
    with ExitStack() as stack:
        app_sessions(world, 2, stack)
        result = output(run(world, "gcp_sql_info", resource="orders-db", long_query_s=0))
    assert result["instance"]["database_version"] == "POSTGRES_15" and result["instance"]["state"] == "RUNNABLE"
    assert result["max_connections"] == 100 and result["connected_as"] == "postgres"
    assert any(group["application_name"] == "orders-api" for group in result["by_application"])


def test_kill_long_queries_runs_postgres_logic_on_the_data_plane(world: GcpWorld) -> None:
    with ExitStack() as stack:
        sessions = app_sessions(world, 3, stack)
        dry = output(run(world, "gcp_sql_kill_long_queries", resource="orders-db", user="app", dry_run=True))
        assert dry["would_terminate"] == 3 and dry["terminated"] == 0
        killed = output(run(world, "gcp_sql_kill_long_queries", resource="orders-db", user="app"))
        assert killed["terminated"] == 3
        assert all(session.closed or session.broken or not _alive(session) for session in sessions)
    superuser = output(run(world, "gcp_sql_kill_long_queries", resource="orders-db", user="postgres"))
    assert superuser["terminated"] == 0  # the protections came along


def _alive(session: psycopg.Connection[Any]) -> bool:
    try:
        session.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def test_sql_restart_drops_sessions_and_keeps_the_data(world: GcpWorld) -> None:
    with ExitStack() as stack:
        sessions = app_sessions(world, 2, stack)
        plan = output(run(world, "gcp_sql_restart_instance", resource="orders-db", dry_run=True))
        assert plan["request"]["method"] == "POST" and plan["request"]["url"].endswith("/instances/orders-db/restart")
        assert all(_alive(session) for session in sessions)
        outcome = run(world, "gcp_sql_restart_instance", resource="orders-db")
        result = output(outcome)
        assert result["operation"]["statuses"][-1] == "DONE" and result["after"]["state"] == "RUNNABLE"
        assert not any(_alive(session) for session in sessions)
    check = outcome.data_check
    assert check is not None and check.survived
    assert {"create_time", "system_identifier", "databases"} <= set(check.before.facts)


def test_sql_scale_tier_within_the_policy(world: GcpWorld) -> None:
    refused = run(world, "gcp_sql_scale_tier", resource="orders-db", tier="db-custom-96-624640")
    assert not refused.ok and "is not in this resource's policy.sql_tiers (db-custom-2-7680)" in str(refused.error)
    plan = output(run(world, "gcp_sql_scale_tier", resource="orders-db", tier=SQL_TIER_TO, dry_run=True))
    assert plan["request"]["method"] == "PATCH" and plan["request"]["body"] == {"settings": {"tier": SQL_TIER_TO}}
    result = output(run(world, "gcp_sql_scale_tier", resource="orders-db", tier=SQL_TIER_TO))
    assert (result["before"]["tier"], result["after"]["tier"]) == (SQL_TIER, SQL_TIER_TO)
    assert world.emulator.instance("sql", "orders-db")["settings"]["tier"] == SQL_TIER_TO


def test_fingerprints_of_the_managed_kinds(world: GcpWorld) -> None:
    redis_print = fingerprint(world.resource("basic-cache"), world.folder)
    sql_print = fingerprint(world.resource("orders-db"), world.folder)
    assert redis_print is not None and redis_print.source == "live" and redis_print.error is None
    assert {"create_time", "keys", "persistent"} <= set(redis_print.facts)
    assert sql_print is not None and {"create_time", "system_identifier", "tables"} <= set(sql_print.facts)


def test_a_sql_error_reads_as_what_to_do(world: GcpWorld) -> None:
    world.emulator.fail_next("cloudsql.instances.restart", 409)
    conflict = run(world, "gcp_sql_restart_instance", resource="orders-db")
    assert not conflict.ok and "another operation is in progress on Cloud SQL instance orders-db" in str(conflict.error)
    reader = world.context(world.with_key("sql-reader", {"cloudsql.instances.get"}))
    denied = run(world, "gcp_sql_restart_instance", reader, resource="orders-db")
    assert "lacks the IAM permission cloudsql.instances.restart (granted by roles/cloudsql.editor)" in str(denied.error)
    world.emulator.fail_next("redis.instances.get", 429)
    quota = probe(world.resource("cache"))
    assert (quota.health, quota.symptom) == (Health.FAILED, "gcp_redis_unreachable")
    assert "quota or rate limit exceeded" in quota.reasons[0]
