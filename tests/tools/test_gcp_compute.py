"""Compute Engine tools and probe through Google's real client, against the GCP emulator.

Every call goes through `run_tool` (the guard, the data fingerprints, redaction), as the
graph's executor and the MCP server call them; operations are polled to DONE.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gcp_support import RESIZE_TO, ZONE, GcpWorld, gcp_world, mutating_calls, output, run

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpWorld]:
    with gcp_world(tmp_path_factory.mktemp("gcp-compute"), backing=False) as started:
        yield started


def test_the_probe_reads_status_and_guest_metrics(world: GcpWorld) -> None:
    snapshot = probe(world.resource("web-1"))
    assert snapshot.health is Health.HEALTHY, snapshot.reasons
    assert snapshot.metrics == {
        "status": "RUNNING",
        "machine_type": "e2-medium",
        "cpu_used_pct": 10.0,
        "memory_used_pct": 35.0,
    }


def test_guest_pressure_is_graded_by_the_inventory_thresholds(world: GcpWorld) -> None:
    world.emulator.set_guest(ZONE, "web-2", memory_used_pct=97.0, cpu_used_pct=88.0)
    snapshot = probe(world.resource("web-2"))
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "gcp_compute_memory_pressure")
    assert snapshot.findings == {
        "gcp_compute_memory_pressure": Health.FAILED,
        "gcp_compute_cpu_saturation": Health.DEGRADED,
    }
    assert "memory 97.0 %" in snapshot.reasons[0]


def test_describe_returns_the_instance_and_its_metrics(world: GcpWorld) -> None:
    result = output(run(world, "gcp_compute_describe", resource="web-1"))
    assert result["instance"]["name"] == "web-1" and result["instance"]["status"] == "RUNNING"
    assert {key: result[key] for key in ("status", "machine_type", "local_ssd")} == {
        "status": "RUNNING",
        "machine_type": "e2-medium",
        "local_ssd": False,
    }
    assert isinstance(result["cpu_used_pct"], float) and isinstance(result["memory_used_pct"], float)


def test_a_dry_run_sends_nothing_and_shows_the_exact_request(world: GcpWorld) -> None:
    before = mutating_calls(world)
    result = output(run(world, "gcp_compute_restart_instance", resource="web-1", dry_run=True))
    assert mutating_calls(world) == before
    assert result["dry_run"] is True
    path = f"/compute/v1/projects/opsgraph-emulated/zones/{ZONE}/instances/web-1/reset"
    assert result["request"] == {"method": "POST", "url": world.emulator.api_endpoint + path, "body": None}


def test_reset_waits_for_its_operation_and_keeps_the_data_fingerprint(world: GcpWorld) -> None:
    spec = CATALOGUE["gcp_compute_restart_instance"]
    assert spec.observe is not None
    observed = spec.observe(world.resource("web-1"), world.context())
    outcome = run(world, "gcp_compute_restart_instance", resource="web-1")
    result = output(outcome)
    assert result["operation"]["statuses"][-1] == "DONE"
    assert result["after"]["last_start_timestamp"] != result["before"]["last_start_timestamp"]
    assert spec.observe(world.resource("web-1"), world.context()) != observed  # a crash in doubt is settled
    check = outcome.data_check
    assert check is not None and check.survived and check.before.source == "live"
    assert set(check.before.facts) == {"id", "creation_timestamp", "disks"}
    assert check.before.facts["disks"] and check.before.facts == check.after.facts


def test_stop_then_start(world: GcpWorld) -> None:
    stopped = output(run(world, "gcp_compute_stop_instance", resource="web-2"))
    assert (stopped["before"]["status"], stopped["after"]["status"]) == ("RUNNING", "TERMINATED")
    down = probe(world.resource("web-2"))
    assert (down.health, down.symptom) == (Health.FAILED, "gcp_compute_down")
    assert "metrics not read: the instance is TERMINATED" in down.reasons

    again = run(world, "gcp_compute_stop_instance", resource="web-2")
    assert not again.ok and "is TERMINATED" in str(again.error)

    started = output(run(world, "gcp_compute_start_instance", resource="web-2"))
    assert started["after"]["status"] == "RUNNING"
    refused = run(world, "gcp_compute_start_instance", resource="web-2")
    assert not refused.ok and "acts on an instance that is TERMINATED or STOPPED" in str(refused.error)


def test_a_vm_with_a_local_ssd_is_never_stopped(world: GcpWorld) -> None:
    before = mutating_calls(world)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("gcp_compute_stop_instance", {}),
        ("gcp_compute_resize", {"machine_type": RESIZE_TO}),
    ]
    for tool, args in calls:
        outcome = run(world, tool, resource="scratch-1", **args)
        assert not outcome.ok and "local SSD" in str(outcome.error)
    assert mutating_calls(world) == before


def test_resize_stops_sets_the_type_and_starts_again(world: GcpWorld) -> None:
    plan = output(run(world, "gcp_compute_resize", resource="resize-1", machine_type=RESIZE_TO, dry_run=True))
    assert [request["url"].rsplit("/", 1)[-1] for request in plan["requests"]] == ["stop", "setMachineType", "start"]
    assert plan["request"]["body"] == {"machineType": f"zones/{ZONE}/machineTypes/{RESIZE_TO}"}

    result = output(run(world, "gcp_compute_resize", resource="resize-1", machine_type=RESIZE_TO))
    assert [operation["statuses"][-1] for operation in result["operations"]] == ["DONE"] * 3
    assert (result["before"]["machine_type"], result["after"]["machine_type"]) == ("e2-medium", RESIZE_TO)
    assert result["after"]["status"] == "RUNNING"
    assert world.emulator.instance("compute", "resize-1")["machineType"].endswith(f"/{RESIZE_TO}")

    unchanged = output(run(world, "gcp_compute_resize", resource="resize-1", machine_type=RESIZE_TO))
    assert unchanged["changed"] is False  # idempotent: a repeat changes nothing


def test_a_machine_type_outside_the_policy_is_refused_by_the_guard(world: GcpWorld) -> None:
    before = mutating_calls(world)
    outcome = run(world, "gcp_compute_resize", resource="resize-1", machine_type="n2-highmem-96")
    assert not outcome.ok
    assert str(outcome.error).startswith("refused: machine type n2-highmem-96 is not in this resource's policy")
    assert mutating_calls(world) == before


def test_an_operation_past_its_deadline_may_still_complete(world: GcpWorld) -> None:
    impatient = world.context(world.with_gcp(operation_timeout_s=0.05))
    outcome = run(world, "gcp_compute_restart_instance", impatient, resource="web-1")
    assert not outcome.ok
    assert "did not finish within the 0.05 s this tool waits" in str(outcome.error) and "may still complete" in str(
        outcome.error
    )
    assert "operation operation-" in str(outcome.error) and "failed:" not in str(outcome.error).split(": ", 1)[1]
    finished = output(run(world, "gcp_compute_describe", resource="web-1"))  # the emulator settles it on a read
    assert finished["status"] == "RUNNING"


def _wait_quiet(world: GcpWorld, name: str) -> None:
    """Let an operation left running by the previous test finish (the emulator settles on reads)."""
    output(run(world, "gcp_compute_describe", resource=name))


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (404, "no such Compute Engine instance web-1 in project opsgraph-emulated, zone us-central1-a"),
        (409, "another operation is in progress on Compute Engine instance web-1"),
        (429, "quota or rate limit exceeded for Compute Engine instance web-1"),
        (401, "Google rejected the key file"),
    ],
)
def test_api_errors_read_as_what_to_do(world: GcpWorld, status: int, says: str) -> None:
    _wait_quiet(world, "web-1")
    # google-auth answers a 401 by fetching a new token and trying again (twice): only a lasting 401 is one.
    world.emulator.fail_next("compute.instances.reset", status, count=3 if status == 401 else 1)
    outcome = run(world, "gcp_compute_restart_instance", resource="web-1")
    assert not outcome.ok and says in str(outcome.error), outcome.error
    assert "Google said:" in str(outcome.error)


def test_permission_denied_names_the_permission_and_its_role(world: GcpWorld) -> None:
    reader = world.context(world.with_key("reader", {"compute.instances.get", "monitoring.timeSeries.list"}))
    outcome = run(world, "gcp_compute_restart_instance", reader, resource="web-1")
    assert not outcome.ok
    error = str(outcome.error)
    assert "lacks the IAM permission compute.instances.reset (granted by roles/compute.instanceAdmin.v1)" in error
    assert "Required 'compute.instances.reset' permission" in error  # the server's own words


def test_the_probe_turns_api_errors_into_failed_snapshots(world: GcpWorld) -> None:
    nobody = world.with_key("nobody", set())
    denied = probe(nobody.get("web-1"))
    assert (denied.health, denied.symptom) == (Health.FAILED, "gcp_compute_auth_failed")
    assert "compute.instances.get" in denied.reasons[0] and "roles/compute.viewer" in denied.reasons[0]

    world.emulator.fail_next("compute.instances.get", 404)
    missing = probe(world.resource("web-1"))
    assert (missing.health, missing.symptom) == (Health.FAILED, "gcp_compute_missing")

    unreachable = world.with_gcp(api_endpoint="http://127.0.0.1:9")
    down = probe(unreachable.get("web-1"))
    assert (down.health, down.symptom) == (Health.FAILED, "gcp_compute_unreachable")
