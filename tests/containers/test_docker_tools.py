"""Every docker tool, the container probe, the faults and the docker lifecycle, against a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from support import free_port, wait_for

from containers.docker_support import TEST_LABEL, RunContainer, container_resource
from opsgraph.agents.records import PlanStep
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import StepVerdict
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.docker_tools import MB
from opsgraph.tools.environments import lifecycle_for
from opsgraph.tools.environments.docker import DockerEnvironment
from opsgraph.tools.faults import scenario_named
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import run_tool
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext, ToolError

# A process that holds about 24 MiB (a shell variable), then idles until SIGTERM.
HOLD_24_MIB = [
    "sh",
    "-c",
    "x=$(head -c 24m /dev/zero | tr '\\0' x); trap 'exit 0' TERM; echo holding; while true; do sleep 1 & wait $!; done",
]


def tools(tmp_path: Path, *resources: dict[str, Any]) -> ToolContext:
    return ToolContext(inventory=parse_inventory({"version": 1, "resources": list(resources)}), state_dir=tmp_path)


def run(ctx: ToolContext, tool: str, **args: Any) -> dict[str, Any]:
    outcome = run_tool(tool, {"resource": "app", **args}, ctx, timeout_s=30)
    assert outcome.ok, outcome.error
    assert outcome.output is not None
    return outcome.output


def test_catalogue_declares_the_docker_tools() -> None:
    risks = {name: spec.risk for name, spec in CATALOGUE.items() if name.startswith("docker_")}
    assert risks == {
        "docker_stats": Risk.READ,
        "docker_logs": Risk.READ,
        "docker_restart": Risk.DISRUPTIVE,
        "docker_scale": Risk.DISRUPTIVE,
        "docker_update": Risk.DISRUPTIVE,
    }
    assert CATALOGUE["docker_update"].undo and CATALOGUE["docker_scale"].undo


def test_stats_and_logs_of_a_running_container(tmp_path: Path, run_container: RunContainer) -> None:
    long_line = "y" * 3000
    command = ["sh", "-c", f"for i in 1 2 3 4 5; do echo line $i; done; echo {long_line}; exec sleep 3600"]
    container = run_container(command=command, mem_limit="64m", memswap_limit="64m", nano_cpus=500_000_000)
    ctx = tools(tmp_path, container_resource("app", container.name))
    wait_for(lambda: container.logs().count(b"\n") >= 6, "the log lines")

    stats = run(ctx, "docker_stats")
    assert stats["running"] is True and stats["state"] == "running"
    assert stats["memory_limit_mb"] == 64 and stats["cpus"] == 0.5
    assert 0 < stats["memory_usage_mb"] < 64 and 0 < stats["memory_used_pct"] < 100
    assert stats["cpu_pct"] is not None and stats["oom_killed"] is False and stats["restart_count"] == 0

    logs = run(ctx, "docker_logs", lines=3)
    assert logs["lines"][:2] == ["line 4", "line 5"]
    assert logs["lines"][2].startswith("yyy") and logs["lines"][2].endswith("[3000 chars]")
    assert run_tool("docker_logs", {"resource": "app", "lines": 5000}, ctx, timeout_s=5).ok is False


def test_crash_then_restart(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container()
    ctx = tools(tmp_path, container_resource("app", container.name))
    resource = ctx.resource("app")
    assert probe(resource).health is Health.HEALTHY

    crashed = scenario_named("container-crash").inject(resource, ctx)
    assert crashed["exit_code"] == 137 and crashed["oom_killed"] is False
    snapshot = probe(resource)
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "container_down")
    assert "exit code 137" in snapshot.reasons[0]

    restarted = run(ctx, "docker_restart", stop_timeout_s=2)
    assert restarted["previous_state"] == "exited" and restarted["previous_exit_code"] == 137
    assert restarted["running"] is True and restarted["pid"]
    assert probe(resource).health is Health.HEALTHY
    assert run_tool("docker_restart", {"resource": "app", "stop_timeout_s": 500}, ctx, timeout_s=5).ok is False


def test_update_limits_and_their_bounds(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container(command=HOLD_24_MIB, mem_limit="64m", memswap_limit="64m")
    wait_for(lambda: b"holding" in container.logs(), "the container to hold its memory")
    ctx = tools(tmp_path, container_resource("app", container.name, policy={"max_memory_mb": 128}))

    updated = run(ctx, "docker_update", memory_mb=96, cpus=1.5)
    assert updated["previous_memory_mb"] == 64 and updated["memory_mb"] == 96
    assert updated["previous_cpus"] is None and updated["cpus"] == 1.5
    container.reload()
    assert container.attrs["HostConfig"]["Memory"] == container.attrs["HostConfig"]["MemorySwap"] == 96 * MB
    assert container.attrs["HostConfig"]["NanoCpus"] == 1_500_000_000

    below_usage = run_tool("docker_update", {"resource": "app", "memory_mb": 16}, ctx, timeout_s=10)
    assert not below_usage.ok and "below current usage" in str(below_usage.error)
    assert not run_tool("docker_update", {"resource": "app"}, ctx, timeout_s=5).ok  # nothing to change

    over = PlanStep(tool="docker_update", args={"resource": "app", "memory_mb": 512}, rationale="", expected_effect="")
    reviewed = review_step(0, over, ctx.inventory, {"app"}, ApprovalMode.NONE)
    assert reviewed.verdict is StepVerdict.REFUSE and "policy ceiling of 128 MiB" in reviewed.reason


def test_memory_pressure_is_graded_against_the_limit(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container(command=HOLD_24_MIB, mem_limit="64m", memswap_limit="64m")
    wait_for(lambda: b"holding" in container.logs(), "the container to hold its memory")
    tight = {"memory_used_pct": {"degraded": 20, "failed": 30}}
    resource = tools(tmp_path, container_resource("app", container.name, thresholds=tight)).resource("app")
    snapshot = probe(resource)
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "container_memory_pressure")
    assert isinstance(snapshot.metrics["memory_used_pct"], float) and snapshot.metrics["memory_used_pct"] >= 30
    assert snapshot.metrics["memory_limit_mb"] == 64


def test_scale_clones_the_first_container_and_removes_the_newest(tmp_path: Path, run_container: RunContainer) -> None:
    first = run_container(mem_limit="32m", memswap_limit="32m", labels={"opsgraph.service": "web"})
    ctx = tools(tmp_path, container_resource("app", first.name, docker={"service_label": "web"}))

    grown = run(ctx, "docker_scale", replicas=3)
    assert grown["previous_replicas"] == 1 and grown["replicas"] == 3 and grown["running"] == 3
    assert grown["created"] == ["web-1", "web-2"]
    client = first.client
    assert client is not None
    clone = client.containers.get("web-1")
    assert clone.attrs["Image"] == first.attrs["Image"]
    assert clone.attrs["Config"]["Cmd"] == first.attrs["Config"]["Cmd"]
    assert clone.attrs["HostConfig"]["Memory"] == 32 * MB
    assert clone.labels["opsgraph.service"] == "web" and clone.labels[TEST_LABEL] == "1"

    shrunk = run(ctx, "docker_scale", replicas=1)
    assert shrunk == {**shrunk, "previous_replicas": 3, "replicas": 1, "removed": ["web-2", "web-1"]}
    assert [c.name for c in client.containers.list(all=True, filters={"label": "opsgraph.service=web"})] == [first.name]
    assert not run_tool("docker_scale", {"resource": "app", "replicas": 11}, ctx, timeout_s=5).ok

    unlabelled = tools(tmp_path, container_resource("app", first.name))
    outcome = run_tool("docker_scale", {"resource": "app", "replicas": 2}, unlabelled, timeout_s=5)
    assert not outcome.ok and "no docker.service_label" in str(outcome.error)


def test_oom_kill_is_real_and_seen_by_the_probe(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container(mem_limit="32m", memswap_limit="32m")
    ctx = tools(tmp_path, container_resource("app", container.name))
    resource = ctx.resource("app")

    killed = scenario_named("container-oom").inject(resource, ctx)
    assert killed["oom_killed"] is True and killed["exit_code"] == 137
    snapshot = probe(resource)
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "container_oom")
    assert "OOM killer" in snapshot.reasons[0] and "32 MiB" in snapshot.reasons[0]

    unlimited = run_container()
    other = tools(tmp_path, container_resource("app", unlimited.name))
    with pytest.raises(ToolError, match="no memory limit"):
        scenario_named("container-oom").inject(other.resource("app"), other)


def test_oom_restarted_by_policy_is_degraded(tmp_path: Path, run_container: RunContainer) -> None:
    grow = ["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' x); sleep 3600"]
    policy = {"Name": "on-failure", "MaximumRetryCount": 5}
    container = run_container(command=grow, mem_limit="16m", memswap_limit="16m", restart_policy=policy)

    def restarted() -> bool:
        container.reload()
        return int(container.attrs["RestartCount"]) >= 1

    wait_for(restarted, "the restart policy to restart the OOM-killed container", timeout_s=20)
    snapshot = probe(tools(tmp_path, container_resource("app", container.name)).resource("app"))
    assert snapshot.symptom == "container_oom" and snapshot.health in (Health.DEGRADED, Health.FAILED)


def test_missing_container_and_missing_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tools(tmp_path, container_resource("app", "no-such-container"))
    snapshot = probe(ctx.resource("app"))
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "container_missing")
    assert "no container named 'no-such-container'" in snapshot.reasons[0]

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    snapshot = probe(ctx.resource("app"))
    assert (snapshot.health, snapshot.symptom) == (Health.FAILED, "container_unreachable")
    outcome = run_tool("docker_stats", {"resource": "app"}, ctx, timeout_s=10)
    assert not outcome.ok and f"no Docker engine answers at unix://{tmp_path}/nothing.sock" in str(outcome.error)


def test_redis_restart_goes_through_the_docker_lifecycle(tmp_path: Path, run_container: RunContainer) -> None:
    port = free_port()
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    container = run_container(image="redis", command=server, network_mode="host")
    entry = {
        "name": "app",
        "kind": "redis",
        "environment": "docker",
        "connection": {"host": "127.0.0.1", "port": port},
        "docker": {"container": container.name},
    }
    ctx = tools(tmp_path, entry)
    client = redis.Redis(port=port, socket_timeout=2)
    wait_for(lambda: _answers(client), "redis in its container")
    client.set("before", "restart")
    pid_before = container.attrs["State"]["Pid"]

    lifecycle = lifecycle_for(ctx.resource("app"), ctx.inventory, tmp_path)
    assert isinstance(lifecycle, DockerEnvironment)
    restarted = run(ctx, "redis_restart")
    assert restarted["running"] is True and restarted["pid"] not in (None, pid_before)
    wait_for(lambda: _answers(client), "redis after the restart")
    assert client.get("before") is None  # no persistence: a real restart of the server
    assert any("Ready to accept connections" in line for line in lifecycle.log_tail("app", 20))
    assert probe(ctx.resource("app")).health is Health.HEALTHY


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
