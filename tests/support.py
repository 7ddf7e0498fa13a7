"""Helpers shared by tests: free ports, inventories on disk, a running local stack, scripted reasoning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from opsgraph.agents.records import Diagnosis, Incident, Plan, PlanStep
from opsgraph.evals.outside import free_port as free_port  # one port per server: see its docstring
from opsgraph.graph.context import Context
from opsgraph.graph.runtime import RunResult, incident_graph, start_incident
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Snapshot


def redis_resource(name: str = "cache", maxmemory_mb: int = 32, **policy: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "redis",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": free_port()},
        "local": {"maxmemory_mb": maxmemory_mb},
        "policy": {"max_memory_mb": 256, **policy},
    }


def shop_resources(max_connections: int = 40, edge: bool = True) -> list[dict[str, Any]]:
    """The sample shop's stack on free ports: Redis, PostgreSQL, the app, and nginx in front if `edge`."""
    resources: list[dict[str, Any]] = [
        redis_resource("cache", maxmemory_mb=32),
        {
            "name": "db", "kind": "postgres", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port(), "user": "postgres", "database": "shop"},
            "local": {"max_connections": max_connections, "app_user": "shop"},
        },
        {
            "name": "shop", "kind": "http", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port()},
            "local": {"app_database": "db", "app_cache": "cache"},
        },
    ]  # fmt: skip
    if edge:
        resources.append({
            "name": "edge", "kind": "nginx", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port()}, "local": {"upstream": "shop"},
        })  # fmt: skip
    return resources


@dataclass
class Stack:
    """A running local stack in a temporary state folder, with its inventory file."""

    inventory_path: Path
    state_dir: Path
    inventory: Inventory
    local: LocalStack

    def context(self, **overrides: Any) -> Context:
        """This stack's Context at test speed; `overrides` may replace anything, the inventory included."""
        return fast_context(**{"inventory_path": self.inventory_path, "state_dir": self.state_dir, **overrides})

    def opsgraph(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`opsgraph ARGS --inventory … --state-dir …` on this stack, as a subprocess."""
        command = [sys.executable, "-m", "opsgraph", *args]
        command += ["--inventory", str(self.inventory_path), "--state-dir", str(self.state_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def fast_context(inventory_path: Path | str, state_dir: Path | str, **overrides: Any) -> Context:
    """A Context at test speed: probes every 0.1 s, a 0.5 s settle window, a 10 s verify deadline."""
    settings: dict[str, Any] = {
        "inventory_path": str(inventory_path),
        "state_dir": str(state_dir),
        "verify_deadline_s": 10.0,
        "settle_s": 0.5,
        "probe_interval_s": 0.1,
    }
    return Context(**{**settings, **overrides})


def run_unattended(
    inventory_path: Path, state_dir: Path, resource: str, incident_id: str, **overrides: Any
) -> RunResult:
    """One incident graph, start to end, with nobody asked (approval none)."""
    context = fast_context(inventory_path, state_dir, **{"approval": "none", **overrides})
    with incident_graph(state_dir) as graph:
        return start_incident(graph, context, resource, incident_id)


@contextmanager
def running_stack(folder: Path, resources: list[dict[str, Any]]) -> Iterator[Stack]:
    inventory_path = folder / "opsgraph.yaml"
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": resources}))
    state_dir = folder / "state"
    inventory = load_inventory(inventory_path)
    local = LocalStack(state_dir, inventory)
    try:
        local.up()
        yield Stack(inventory_path, state_dir, inventory, local)
    finally:
        local.down()


class ScriptedReasoner:
    """A reasoning backend that proposes exactly the steps a test gives it (e.g. unsafe ones)."""

    name = "scripted"

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps

    def diagnose(self, incident: Incident, snapshot: Snapshot, read: Any, feedback: str | None) -> Diagnosis:
        return Diagnosis(
            root_cause="scripted",
            symptom=incident.symptom,
            evidence=snapshot.reasons,
            confidence=0.5,
            severity=incident.severity,
            backend=self.name,
        )

    def plan(self, incident: Incident, diagnosis: Diagnosis, resource: Any, read: Any, feedback: str | None) -> Plan:
        steps = [PlanStep(rationale="scripted", expected_effect="scripted", **step) for step in self.steps]
        return Plan(steps=steps, summary="scripted plan", backend=self.name)


@contextmanager
def watching(stack: Stack, approval: str, *options: str) -> Iterator[subprocess.Popen[str]]:
    command = [
        sys.executable, "-m", "opsgraph", "watch", "--inventory", str(stack.inventory_path),
        "--state-dir", str(stack.state_dir), "--approval", approval, "--interval", "0.2", *options,
    ]  # fmt: skip
    log = (stack.state_dir.parent / "watch.log").open("w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stop(process: subprocess.Popen[str], stack: Stack) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    return (stack.state_dir.parent / "watch.log").read_text()


def tool_output(outcome: ToolOutcome) -> dict[str, Any]:
    """The output of a tool call that must have worked (its error is the assertion message)."""
    assert outcome.ok and outcome.output is not None, outcome.error
    return outcome.output


def session_alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether a PostgreSQL session still answers (false once the server terminated it)."""
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def process_alive(pid: int) -> bool:
    """A live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def child_pids(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (a postmaster's backends, an nginx master's workers)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue  # exited while we looked
        if f"\nPPid:\t{pid}\n" in text and process_alive(int(status.parent.name)):
            found.append(int(status.parent.name))
    return found


class Cli:
    """The real `opsgraph` command as a subprocess, on a one-Redis inventory in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.inventory = folder / "opsgraph.yaml"
        self.state_dir = folder / "state"
        self.inventory.write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))
        self._servers = LocalStack(self.state_dir, load_inventory(self.inventory))  # a test may spoil the file

    def __call__(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        """Run `opsgraph ARGS` with this inventory and state folder (where the command takes them)."""
        command = [sys.executable, "-m", "opsgraph", *args]
        if args[0] not in ("incidents",):
            command += ["--inventory", str(self.inventory)]
        if args[0] not in ("scan", "traffic"):
            command += ["--state-dir", str(self.state_dir)]
        environment = {**os.environ, **env}
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=120, check=False, env=environment
        )

    def down(self) -> None:
        self._servers.down()
