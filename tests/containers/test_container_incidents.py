"""Container incidents end to end: real faults in real containers, fixed through the graph and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import running_stack

from containers.docker_support import RunContainer, container_resource
from opsgraph.graph.runtime import incident_graph, resume_incident, start_incident
from opsgraph.tools.docker_tools import MB
from opsgraph.tools.faults import scenario_named
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

REDIS = ["redis-server", "--save", "", "--appendonly", "no"]


def test_crash_is_detected_restarted_and_verified_unattended(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container()
    with running_stack(tmp_path, [container_resource("app", container.name)]) as stack:
        context = stack.context(approval="none")
        scenario_named("container-crash").inject(stack.inventory.get("app"), context.tools)
        with incident_graph(stack.state_dir) as graph:
            done = start_incident(graph, context, "app", "inc-crash")
    report = done.report
    assert report is not None, done.values.get("outcome_detail")
    assert report["resolved"] is True, report["outcome_detail"]
    assert report["symptom"] == "container_down"
    assert "SIGKILL (exit 137)" in report["root_cause"]
    assert [(a["tool"], a["status"]) for a in report["actions"]] == [("docker_restart", "ok")]
    assert report["metrics_before"]["state"] == "exited" and report["metrics_after"]["state"] == "running"
    container.reload()
    assert container.status == "running"


def test_crash_fix_waits_for_an_approval(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container()
    with running_stack(tmp_path, [container_resource("app", container.name)]) as stack:
        context = stack.context()  # approval=risky: a restart is disruptive
        resource = stack.inventory.get("app")
        scenario_named("container-crash").inject(resource, context.tools)
        with incident_graph(stack.state_dir) as graph:
            paused = start_incident(graph, context, "app", "inc-crash-ask")
            request = paused.pending
            assert request is not None, paused.values.get("outcome_detail")
            assert [(s["tool"], s["risk"]) for s in request["steps"]] == [("docker_restart", "disruptive")]
            assert probe(resource).health is Health.FAILED  # nothing ran before the approval

            answer = {"decision": "approve", "by": "alice", "digests": [s["digest"] for s in request["steps"]]}
            done = resume_incident(graph, context, "inc-crash-ask", answer)
    report = done.report
    assert report is not None and report["resolved"] is True, done.values.get("outcome_detail")
    assert report["approvals"][0]["by"] == "alice"
    assert probe(resource).health is Health.HEALTHY


def test_oom_kill_gets_more_memory_and_a_restart(tmp_path: Path, run_container: RunContainer) -> None:
    container = run_container(image="redis", command=REDIS, mem_limit="32m", memswap_limit="32m")
    with running_stack(tmp_path, [container_resource("app", container.name)]) as stack:
        context = stack.context(approval="none")
        killed = scenario_named("container-oom").inject(stack.inventory.get("app"), context.tools)
        assert killed["oom_killed"] is True
        with incident_graph(stack.state_dir) as graph:
            done = start_incident(graph, context, "app", "inc-oom")
    report = done.report
    assert report is not None and report["resolved"] is True, done.values.get("outcome_detail")
    assert report["symptom"] == "container_oom" and report["metrics_before"]["oom_killed"] == 1
    assert "OOM killer" in report["root_cause"] and "32 MiB" in report["root_cause"]
    assert [(a["tool"], a["args"], a["status"]) for a in report["actions"]] == [
        ("docker_update", {"resource": "app", "memory_mb": 64}, "ok"),
        ("docker_restart", {"resource": "app"}, "ok"),
    ]
    container.reload()
    assert container.status == "running" and container.attrs["HostConfig"]["Memory"] == 64 * MB


@pytest.mark.parametrize(
    ("scenario", "tools", "limits"),
    [
        ("container-crash", ["docker_restart"], {}),
        ("container-oom", ["docker_update", "docker_restart"], {"mem_limit": "32m", "memswap_limit": "32m"}),
    ],
)
def test_cli_demo_of_a_container_fault(
    tmp_path: Path, run_container: RunContainer, scenario: str, tools: list[str], limits: dict[str, str]
) -> None:
    container = run_container(**limits)
    inventory = tmp_path / "opsgraph.yaml"
    inventory.write_text(json.dumps({"version": 1, "resources": [container_resource("app", container.name)]}))
    command = [
        sys.executable, "-m", "opsgraph", "demo", scenario, "--approval", "none", "--json",
        "--inventory", str(inventory), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["resource"] == "app" and record["resolved"] is True, record
    assert [a["tool"] for a in record["actions"]] == tools
    container.reload()
    assert container.status == "running"
