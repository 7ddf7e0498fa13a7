"""The GCP emulator driven by Google's REAL client libraries, against real backing servers.

Compute Engine, Memorystore and Cloud SQL Admin go over REST (the clients' `rest`
transports, pointed at `api_endpoint`), Cloud Monitoring over gRPC through
google-auth's secure_authorized_channel with local credentials, exactly as the client
side of OpsGraph builds it. Compute operations are polled with ZoneOperationsClient:
compute_v1's ExtendedOperation.result() polls through a ZoneOperationsClient it makes
without the caller's client_options, i.e. at compute.googleapis.com.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth.transport.grpc
import google.auth.transport.requests
import grpc  # type: ignore[import-untyped]
import httpx
import psycopg
import pytest
import yaml
from google.api_core import exceptions
from google.auth.exceptions import RefreshError
from google.cloud import compute_v1, monitoring_v3, redis_v1
from google.cloud.compute_v1.services.instances.transports import InstancesRestTransport
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.cloud.sqladmin_v1beta4 import (
    SqlInstancesServiceClient,
    SqlOperationsServiceClient,
)
from outside_postgres import OutsidePostgres
from outside_redis import OutsideRedis
from support import wait_for

from gcp_emulator.emulated import PROJECT, REGION, ZONE, credentials, emulator_config
from opsgraph.gcp_emulator import GcpEmulator
from opsgraph.gcp_emulator.__main__ import main as emulator_main

CACHE = f"projects/{PROJECT}/locations/{REGION}/instances/cache"
ORDERS_DB = {"project": PROJECT, "instance": "orders-db"}


def rest_options(emulator: GcpEmulator) -> dict[str, str]:
    return {"api_endpoint": emulator.api_endpoint}


@pytest.fixture(scope="module")
def instances(emulator: GcpEmulator, key_file: Path) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(
        credentials=credentials(key_file), client_options=rest_options(emulator), transport="rest"
    )


@pytest.fixture(scope="module")
def zone_operations(emulator: GcpEmulator, key_file: Path) -> compute_v1.ZoneOperationsClient:
    return compute_v1.ZoneOperationsClient(
        credentials=credentials(key_file), client_options=rest_options(emulator), transport="rest"
    )


def metric_client(emulator: GcpEmulator, key_file: Path) -> monitoring_v3.MetricServiceClient:
    channel = google.auth.transport.grpc.secure_authorized_channel(  # type: ignore[no-untyped-call]
        credentials(key_file), google.auth.transport.requests.Request(), emulator.monitoring_endpoint,
        ssl_credentials=grpc.local_channel_credentials(),
    )  # fmt: skip
    return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))


def points(client: monitoring_v3.MetricServiceClient, metric: str, **resource_labels: str) -> list[Any]:
    conditions = [f'metric.type = "{metric}"', *(f'resource.labels.{k} = "{v}"' for k, v in resource_labels.items())]
    now = int(time.time())
    series = client.list_time_series(
        request={
            "name": f"projects/{PROJECT}",
            "filter": " AND ".join(conditions),
            "interval": {"end_time": {"seconds": now}, "start_time": {"seconds": now - 60}},
        }
    )
    return [(s.metric.labels, s.points[0].value) for s in series]


def vm(instances: compute_v1.InstancesClient, name: str) -> compute_v1.Instance:
    return instances.get(project=PROJECT, zone=ZONE, instance=name)


def wait(zone_operations: compute_v1.ZoneOperationsClient, operation: compute_v1.Operation) -> compute_v1.Operation:
    return zone_operations.wait(project=PROJECT, zone=ZONE, operation=operation.name)


# ---- Compute Engine


def test_instances_get_and_list_answer_the_real_resource_shape(instances: compute_v1.InstancesClient) -> None:
    web = vm(instances, "web-1")
    assert (web.name, web.status) == ("web-1", "RUNNING")
    assert web.id == vm(instances, "web-1").id and web.id > 0
    assert web.machine_type.endswith(f"/projects/{PROJECT}/zones/{ZONE}/machineTypes/e2-medium")
    assert web.zone.endswith(f"/zones/{ZONE}") and web.self_link.endswith("/instances/web-1")
    assert [(d.type_, d.boot) for d in web.disks] == [("PERSISTENT", True)]
    assert web.disks[0].source.endswith("/disks/web-1") and web.creation_timestamp and web.last_start_timestamp
    assert [(d.type_, d.boot) for d in vm(instances, "scratch-1").disks] == [("PERSISTENT", True), ("SCRATCH", False)]
    listed = [item.name for item in instances.list(project=PROJECT, zone=ZONE)]
    assert listed == ["scratch-1", "web-1", "web-2", "web-3", "web-4"]
    with pytest.raises(exceptions.NotFound, match="instances/nope"):
        vm(instances, "nope")


def test_stop_set_machine_type_start_go_through_operations_and_statuses(
    instances: compute_v1.InstancesClient, zone_operations: compute_v1.ZoneOperationsClient
) -> None:
    request = compute_v1.InstancesSetMachineTypeRequest(machine_type=f"zones/{ZONE}/machineTypes/e2-standard-4")
    with pytest.raises(exceptions.BadRequest, match="TERMINATED"):
        instances.set_machine_type_unary(
            project=PROJECT, zone=ZONE, instance="web-2", instances_set_machine_type_request_resource=request
        )
    stop = instances.stop_unary(project=PROJECT, zone=ZONE, instance="web-2")
    assert (stop.operation_type, stop.status) == ("stop", compute_v1.Operation.Status.PENDING)
    assert stop.target_link.endswith("/instances/web-2") and stop.progress == 0
    assert vm(instances, "web-2").status == "STOPPING"
    with pytest.raises(exceptions.Conflict, match="already in progress"):
        instances.start_unary(project=PROJECT, zone=ZONE, instance="web-2")
    seen = {zone_operations.get(project=PROJECT, zone=ZONE, operation=stop.name).status}
    done = wait(zone_operations, stop)
    assert done.status == compute_v1.Operation.Status.DONE and done.progress == 100 and done.end_time
    assert seen <= {compute_v1.Operation.Status.PENDING, compute_v1.Operation.Status.RUNNING}
    stopped = vm(instances, "web-2")
    assert stopped.status == "TERMINATED" and stopped.last_stop_timestamp

    resize = instances.set_machine_type_unary(
        project=PROJECT, zone=ZONE, instance="web-2", instances_set_machine_type_request_resource=request
    )
    wait(zone_operations, resize)
    assert vm(instances, "web-2").machine_type.endswith("/machineTypes/e2-standard-4")

    start = instances.start_unary(project=PROJECT, zone=ZONE, instance="web-2")
    assert vm(instances, "web-2").status == "STAGING"
    wait(zone_operations, start)
    started = vm(instances, "web-2")
    assert started.status == "RUNNING" and started.last_start_timestamp > stopped.last_start_timestamp


def test_stopping_a_vm_with_local_ssd_needs_discard_local_ssd(
    instances: compute_v1.InstancesClient, zone_operations: compute_v1.ZoneOperationsClient
) -> None:
    with pytest.raises(exceptions.BadRequest, match="discard-local-ssd"):
        instances.stop_unary(project=PROJECT, zone=ZONE, instance="scratch-1")
    request = compute_v1.StopInstanceRequest(project=PROJECT, zone=ZONE, instance="scratch-1", discard_local_ssd=False)
    stop = instances.stop_unary(request=request)
    assert wait(zone_operations, stop).status == compute_v1.Operation.Status.DONE


def test_reset_restores_guest_metrics_that_monitoring_serves(
    emulator: GcpEmulator, key_file: Path, instances: compute_v1.InstancesClient,
    zone_operations: compute_v1.ZoneOperationsClient,
) -> None:  # fmt: skip
    metrics = metric_client(emulator, key_file)
    web = vm(instances, "web-3")
    emulator.set_guest(ZONE, "web-3", memory_used_pct=97.0, cpu_used_pct=88.0)
    memory = points(metrics, "agent.googleapis.com/memory/percent_used", instance_id=str(web.id))
    assert [(dict(labels), value.double_value) for labels, value in memory] == [({"state": "used"}, 97.0)]
    cpu = points(metrics, "compute.googleapis.com/instance/cpu/utilization", instance_id=str(web.id), zone=ZONE)
    assert [value.double_value for _, value in cpu] == [pytest.approx(0.88)]

    reset = instances.reset_unary(project=PROJECT, zone=ZONE, instance="web-3")
    assert vm(instances, "web-3").status == "RUNNING"  # a reset keeps the VM RUNNING throughout
    wait(zone_operations, reset)
    assert vm(instances, "web-3").last_start_timestamp > web.last_start_timestamp
    memory = points(metrics, "agent.googleapis.com/memory/percent_used", instance_id=str(web.id))
    assert [value.double_value for _, value in memory] == [35.0]


# ---- Memorystore


def test_memorystore_patch_resizes_the_real_redis_and_monitoring_reads_it_live(
    emulator: GcpEmulator, key_file: Path, backing_redis: OutsideRedis
) -> None:
    client = redis_v1.CloudRedisClient(
        credentials=credentials(key_file), client_options=rest_options(emulator), transport="rest"
    )
    cache = client.get_instance(name=CACHE)
    assert (cache.host, cache.port, cache.memory_size_gb) == ("127.0.0.1", backing_redis.port, 1)
    assert cache.state == redis_v1.Instance.State.READY and cache.tier == redis_v1.Instance.Tier.STANDARD_HA
    assert cache.redis_version.startswith("REDIS_") and cache.current_location_id == f"{REGION}-a"
    with backing_redis.client() as server:
        assert int(server.config_get("maxmemory")["maxmemory"]) == 8 * 1024 * 1024
        server.set("ballast", "x" * 1024 * 1024)

        operation = client.update_instance(
            update_mask={"paths": ["memory_size_gb"]}, instance=redis_v1.Instance(name=CACHE, memory_size_gb=2)
        )
        assert client.get_instance(name=CACHE).state == redis_v1.Instance.State.UPDATING
        with pytest.raises(exceptions.Conflict):
            client.failover_instance(name=CACHE)
        resized = operation.result(timeout=10)  # type: ignore[no-untyped-call]
        assert resized.memory_size_gb == 2 and resized.state == redis_v1.Instance.State.READY
        assert int(server.config_get("maxmemory")["maxmemory"]) == 2 * 8 * 1024 * 1024

        used = int(server.info("memory")["used_memory"])
        ratio = points(metric_client(emulator, key_file), "redis.googleapis.com/stats/memory/usage_ratio",
                       instance_id=CACHE)  # fmt: skip
        assert [value.double_value for _, value in ratio] == [pytest.approx(used / (16 * 1024 * 1024), rel=0.05)]
        server.delete("ballast")

    with pytest.raises(exceptions.BadRequest, match="only memorySizeGb"):
        client.update_instance(update_mask={"paths": ["display_name"]}, instance=redis_v1.Instance(name=CACHE))


def test_memorystore_failover_switches_zone_on_standard_ha_and_is_refused_on_basic(
    emulator: GcpEmulator, key_file: Path
) -> None:
    client = redis_v1.CloudRedisClient(
        credentials=credentials(key_file), client_options=rest_options(emulator), transport="rest"
    )
    with pytest.raises(exceptions.BadRequest, match="BASIC tier") as refused:
        client.failover_instance(name=f"projects/{PROJECT}/locations/{REGION}/instances/basic-cache")
    assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    before = client.get_instance(name=CACHE).current_location_id
    after = client.failover_instance(name=CACHE).result(timeout=10)  # type: ignore[no-untyped-call]
    assert after.current_location_id != before and after.current_location_id == f"{REGION}-b"


# ---- Cloud SQL


def test_sql_restart_drops_the_real_client_sessions_and_monitoring_counts_backends(
    emulator: GcpEmulator, key_file: Path, backing_postgres: OutsidePostgres
) -> None:
    creds = credentials(key_file)
    sql = SqlInstancesServiceClient(credentials=creds, client_options=rest_options(emulator), transport="rest")
    operations = SqlOperationsServiceClient(credentials=creds, client_options=rest_options(emulator), transport="rest")
    db = sql.get(request=ORDERS_DB)
    assert (db.state.name, db.database_version.name, db.connection_name) == (
        "RUNNABLE", "POSTGRES_15", f"{PROJECT}:{REGION}:orders-db",
    )  # fmt: skip
    assert [(flag.name, flag.value) for flag in db.settings.database_flags] == [("max_connections", "100")]
    assert [(ip.type_.name, ip.ip_address) for ip in db.ip_addresses] == [("PRIMARY", "127.0.0.1")]

    app = [backing_postgres.connect("app", "app-secret") for _ in range(2)]
    admin = backing_postgres.connect()
    metrics = metric_client(emulator, key_file)
    backends = points(metrics, "cloudsql.googleapis.com/database/postgresql/num_backends",
                      database_id=f"{PROJECT}:orders-db")  # fmt: skip
    assert [(dict(labels), value.int64_value) for labels, value in backends] == [({"database": "postgres"}, 3)]

    restart = sql.restart(request=ORDERS_DB)
    assert (restart.operation_type.name, restart.status.name) == ("RESTART", "PENDING")
    assert sql.get(request=ORDERS_DB).state.name == "MAINTENANCE"
    with pytest.raises(exceptions.Conflict, match="another operation was already in progress"):
        sql.restart(request=ORDERS_DB)
    request = {"project": PROJECT, "operation": restart.name}
    done = wait_for(lambda: (op := operations.get(request=request)).status.name == "DONE" and op, "the restart", 10)
    assert done.target_link.endswith("/instances/orders-db") and not done.error.errors
    assert sql.get(request=ORDERS_DB).state.name == "RUNNABLE"
    for conn in app:
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    assert admin.execute("SELECT 1").fetchone() == (1,)  # a superuser's session survives
    admin.close()


def test_sql_patch_changes_tier_and_flags(emulator: GcpEmulator, key_file: Path) -> None:
    sql = SqlInstancesServiceClient(credentials=credentials(key_file), client_options=rest_options(emulator),
                                    transport="rest")  # fmt: skip
    flags = [{"name": "max_connections", "value": "200"}]
    body = {"settings": {"tier": "db-custom-2-7680", "database_flags": flags}}
    patch = sql.patch(request={**ORDERS_DB, "body": body})
    assert patch.operation_type.name == "UPDATE"
    wait_for(lambda: sql.get(request=ORDERS_DB).settings.tier == "db-custom-2-7680", "the patch")
    patched = sql.get(request=ORDERS_DB).settings
    assert [(flag.name, flag.value) for flag in patched.database_flags] == [("max_connections", "200")]


# ---- auth, IAM, injected faults


def test_calls_without_a_live_token_are_unauthenticated(emulator: GcpEmulator) -> None:
    url = f"{emulator.api_endpoint}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/web-1"
    for headers in ({}, {"Authorization": "Bearer emulator-forged"}, {"Authorization": "Bearer a.b.c"}):
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
    metrics = monitoring_v3.MetricServiceClient(
        transport=MetricServiceGrpcTransport(
            channel=grpc.secure_channel(emulator.monitoring_endpoint, grpc.local_channel_credentials())
        )
    )
    with pytest.raises(exceptions.Unauthenticated):
        points(metrics, "agent.googleapis.com/memory/percent_used")


def test_token_endpoint_refuses_a_key_it_did_not_issue(emulator: GcpEmulator, tmp_path: Path, key_file: Path) -> None:
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"}
    answer = httpx.post(f"{emulator.api_endpoint}/token", data=grant)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    other = GcpEmulator(emulator.config.model_copy(update={"compute": [], "redis": [], "sql": []}), tmp_path)
    try:
        foreign = json.loads(other.key_file("opsgraph-sa").read_text())  # same email, a key this emulator never made
    finally:
        other.stop()
    foreign["token_uri"] = f"{emulator.api_endpoint}/token"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(foreign))
    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials(forged).refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]


def test_a_missing_permission_is_refused_in_googles_words(emulator: GcpEmulator) -> None:
    reader = emulator.key_file("reader-sa", frozenset({"compute.instances.get"}))
    client = compute_v1.InstancesClient(credentials=credentials(reader), client_options=rest_options(emulator),
                                        transport="rest")  # fmt: skip
    assert client.get(project=PROJECT, zone=ZONE, instance="web-1").name == "web-1"
    with pytest.raises(exceptions.Forbidden) as refused:
        client.reset_unary(project=PROJECT, zone=ZONE, instance="web-1")
    expected = f"Required 'compute.instances.reset' permission for 'projects/{PROJECT}/zones/{ZONE}/instances/web-1'"
    assert expected in refused.value.message
    assert refused.value.reason == "IAM_PERMISSION_DENIED"
    assert refused.value.metadata == {"permission": "compute.instances.reset",
                                      "resource": f"projects/{PROJECT}/zones/{ZONE}/instances/web-1"}  # fmt: skip
    denied = [r for r in emulator.requests() if r.status == 403]
    assert denied[-1].permission == "compute.instances.reset"
    assert denied[-1].principal == f"reader-sa@{PROJECT}.iam.gserviceaccount.com"


def test_injected_faults_surface_as_the_matching_api_core_exceptions(
    emulator: GcpEmulator, instances: compute_v1.InstancesClient
) -> None:
    for status, expected in ((404, exceptions.NotFound), (409, exceptions.Conflict), (429, exceptions.TooManyRequests)):
        emulator.fail_next("compute.instances.get", status, message=f"injected {status}")
        with pytest.raises(expected, match=f"injected {status}"):
            vm(instances, "web-4")
    assert vm(instances, "web-4").name == "web-4"  # count=1: the next call works again
    emulator.fail_next("monitoring.timeSeries.list", 500, count=1)
    with pytest.raises(exceptions.InternalServerError):
        points(metric_client(emulator, emulator.key_file()), "agent.googleapis.com/memory/percent_used")


def test_short_lived_tokens_are_refreshed_and_calls_keep_working(
    tmp_path: Path, backing_redis: OutsideRedis, backing_postgres: OutsidePostgres
) -> None:
    config = emulator_config(backing_redis, backing_postgres, token_ttl_s=1, redis=[], sql=[])
    with GcpEmulator(config, tmp_path) as emu:
        key = emu.key_file()
        # A transport of our own with always_use_jwt_access off: the token flow, not a self-signed JWT.
        transport = InstancesRestTransport(credentials=credentials(key), host=emu.api_endpoint)
        client = compute_v1.InstancesClient(transport=transport)
        metrics = metric_client(emu, key)
        for _ in range(3):
            assert client.get(project=PROJECT, zone=ZONE, instance="web-1").status == "RUNNING"
            assert points(metrics, "agent.googleapis.com/memory/percent_used", instance_id=str(vm(client, "web-1").id))
        tokens = [token for token in emu.issued_tokens() if token.startswith("emulator-")]
        assert len(tokens) >= 6 and len(set(tokens)) == len(tokens)
        assert [r.path for r in emu.requests() if r.status == 401] == []


# ---- the admin surface and the command line


def test_admin_routes_mirror_the_python_api(emulator: GcpEmulator) -> None:
    admin = f"{emulator.api_endpoint}/emulator"
    answer = httpx.post(f"{admin}/compute/{PROJECT}/{ZONE}/web-4/guest", json={"memory_used_pct": 91})
    assert answer.status_code == 200 and answer.json()["name"] == "web-4"
    assert httpx.get(f"{admin}/sql/orders-db").json()["connectionName"] == f"{PROJECT}:{REGION}:orders-db"
    fault = {"permission": "compute.instances.get", "status": 500}
    assert httpx.post(f"{admin}/fail_next", json=fault).status_code == 200
    web_4 = f"{emulator.api_endpoint}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/web-4"
    assert httpx.get(web_4, headers={"Authorization": "Bearer nope"}).status_code == 401  # no fault is spent on it
    assert set(httpx.get(f"{admin}/tokens").json()["tokens"]) == set(emulator.issued_tokens())
    assert httpx.get(f"{admin}/requests").json()["requests"][-1]["status"] == 401
    assert httpx.post(f"{admin}/compute/{PROJECT}/{ZONE}/web-4/guest", json={"memory_used_pct": 101}).status_code == 400
    assert httpx.get(f"{admin}/compute/nope").status_code == 404
    client = compute_v1.InstancesClient(
        credentials=credentials(emulator.key_file()), client_options=rest_options(emulator), transport="rest"
    )
    with pytest.raises(exceptions.InternalServerError):
        client.get(project=PROJECT, zone=ZONE, instance="web-4", retry=None)
    assert client.get(project=PROJECT, zone=ZONE, instance="web-4").name == "web-4"


@pytest.fixture
def foreground(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    config = tmp_path / "emulator.yaml"
    config.write_text(yaml.safe_dump({"project": PROJECT, "compute": [{"zone": ZONE, "name": "web-1"}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "opsgraph.gcp_emulator", "--config", str(config), "--folder", str(tmp_path / "keys")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        yield process, json.loads(process.stdout.readline())
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_the_command_line_serves_until_sigterm(foreground: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    process, started = foreground
    assert started["emulator"] == "gcp" and Path(started["key_file"]).is_file()
    options = {"api_endpoint": started["api_endpoint"]}
    client = compute_v1.InstancesClient(credentials=credentials(Path(started["key_file"])), client_options=options,
                                        transport="rest")  # fmt: skip
    assert client.get(project=PROJECT, zone=ZONE, instance="web-1").status == "RUNNING"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_a_bad_config_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"project": PROJECT, "redis": [{"region": REGION, "name": "cache"}]}))
    assert emulator_main(["--config", str(config), "--folder", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "invalid emulator config" in error and "redis.0.port" in error
