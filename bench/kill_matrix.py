"""Kill -9 matrix: the worker dies at each dangerous moment of a fix; nothing is repeated, lost or stuck.

Target: a real private redis-server, killed to make the fault (the runbook's fix is
`redis_restart`, a non-idempotent step that waits for an approval). Per run:

1. SIGKILL redis-server; a real `opsgraph watch` detects it and pauses at the approval;
2. at point `awaiting_approval` the watcher is SIGKILLed while it waits; at every other point
   `opsgraph approve` runs with `OPSGRAPH_FAILPOINT=<point>` and SIGKILLs itself there
   (`opsgraph.graph.failpoints`: after the intent row, after the tool call but before its
   result, after the result, before the executor's checkpoint, during verification);
3. the next start — `opsgraph incidents repair`, and `approve` if the incident still waits —
   must finish the incident.

Counted independently of OpsGraph's own ledger where it matters: a duplicated action is a
second server start in redis-server's own log ("Ready to accept connections"). Lost: no
incident in the ledger for the fault. Stuck: the incident not closed after the next start.
In doubt: a step with an intent and no result after the next start.

    uv run python -m bench.kill_matrix [--runs 10] [--points after_intent,...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.redis_memory_pressure import free_port
from opsgraph.graph.failpoints import (
    AFTER_INTENT,
    AFTER_RESULT,
    AFTER_TOOL_CALL,
    BEFORE_CHECKPOINT,
    DURING_VERIFICATION,
    VARIABLE,
)
from opsgraph.graph.ledger import OPEN_STATUSES, Ledger
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import load_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

AWAITING_APPROVAL = "awaiting_approval"
POINTS = (AFTER_INTENT, AFTER_TOOL_CALL, AFTER_RESULT, BEFORE_CHECKPOINT, DURING_VERIFICATION, AWAITING_APPROVAL)
_READY = "Ready to accept connections"
_DEADLINE_S = 90.0


@dataclass(frozen=True)
class Case:
    point: str
    killed: bool  # the worker really died at the point (else the run proves nothing)
    duplicated: int  # server starts beyond the one the fix needed
    lost: bool
    stuck: bool
    in_doubt: int
    resolved: bool
    detail: str


# The matrix kills and restarts the same server run after run, on purpose: the caps would (rightly)
# stop that as a crash loop. They are measured on their own (tests/graph/test_caps.py).
UNCAPPED = {
    "OPSGRAPH_RESOURCE_ACTION_CAP": "1000000",
    "OPSGRAPH_RESOURCE_ACTION_WINDOW_S": "0.001",
    "OPSGRAPH_GLOBAL_ACTION_CAP": "1000000",
}


class Target:
    """A private Redis in a state folder, with the inventory the CLI reads."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.inventory_path = folder / "opsgraph.yaml"
        self.state_dir = folder / "state"
        resource = {
            "name": "cache",
            "kind": "redis",
            "environment": "local",
            "connection": {"host": "127.0.0.1", "port": port},
            "local": {"maxmemory_mb": 32},
            "policy": {"max_memory_mb": 256},
        }
        self.inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": [resource]}))
        self.inventory = load_inventory(self.inventory_path)
        self.local = LocalStack(self.state_dir, self.inventory)
        self.ledger = Ledger(self.state_dir / "ledger.sqlite")

    def starts(self) -> int:
        log = self.state_dir / "local" / "cache" / "redis.log"
        return log.read_text(errors="replace").count(_READY) if log.exists() else 0

    def kill_server(self) -> None:
        pid = self.local.status()[0].pid
        assert pid is not None, "redis-server is not running"
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: probe(self.inventory.get("cache")).health is not Health.HEALTHY, "redis to be down")

    def cli(self, *args: str, failpoint: str | None = None) -> subprocess.Popen[str]:
        env = {**os.environ, **UNCAPPED, "PYTHONUNBUFFERED": "1"}
        env.pop(VARIABLE, None)
        if failpoint is not None:
            env[VARIABLE] = failpoint
        command = [sys.executable, "-m", "opsgraph", *args]
        command += ["--inventory", str(self.inventory_path), "--state-dir", str(self.state_dir)]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.folder
        )

    def run(self, *args: str, failpoint: str | None = None) -> tuple[int, str]:
        process = self.cli(*args, failpoint=failpoint)
        stdout, stderr = process.communicate(timeout=_DEADLINE_S)
        return process.returncode, stdout + stderr

    def incidents(self) -> list[dict[str, object]]:
        return [row for row in self.ledger.incidents(limit=1000) if row["resource"] == "cache"]


def _wait(condition: object, what: str, deadline_s: float = _DEADLINE_S) -> None:
    assert callable(condition)
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {deadline_s:.0f} s for {what}")
        time.sleep(0.05)


def wait_for_pause(target: Target, kill_watcher: bool = False) -> str:
    """Kill the server; a real watcher opens an incident and pauses it at the approval; stop (or kill) it."""
    known = {row["incident_id"] for row in target.incidents()}
    target.kill_server()
    watcher = target.cli("watch", "--interval", "0.3", "--cooldown", "0")
    try:
        _wait(
            lambda: any(
                row["status"] == "awaiting_approval" and row["incident_id"] not in known for row in target.incidents()
            ),
            "watch to open an incident and pause at the approval",
        )
    finally:
        if kill_watcher:
            watcher.kill()
        else:
            watcher.terminate()
        watcher.communicate(timeout=_DEADLINE_S)
    new = [row for row in target.incidents() if row["incident_id"] not in known]
    return str(new[0]["incident_id"])


def one_case(target: Target, point: str) -> Case:
    """One fault, one kill at `point`, one next start; what the ledger and the server's log say after."""
    starts_before = target.starts()
    incident_id = wait_for_pause(target, kill_watcher=point == AWAITING_APPROVAL)
    killed = point == AWAITING_APPROVAL
    if point != AWAITING_APPROVAL:
        code, _ = target.run("approve", incident_id, "--by", "bench", failpoint=point)
        killed = code == -signal.SIGKILL
    code, _ = target.run("incidents", "repair")  # the next start
    record = target.ledger.incident(incident_id)
    if record is not None and record["status"] == "awaiting_approval":
        code, _ = target.run("approve", incident_id, "--by", "bench")
        record = target.ledger.incident(incident_id)
    starts = target.starts() - starts_before
    in_doubt = [intent for intent in target.ledger.in_doubt() if intent.incident_id == incident_id]
    status = str(record["status"]) if record else "missing"
    return Case(
        point=point,
        killed=killed,
        duplicated=max(0, starts - 1),
        lost=record is None,
        stuck=status in OPEN_STATUSES,
        in_doubt=len(in_doubt),
        resolved=status == "resolved" and probe(target.inventory.get("cache")).health is Health.HEALTHY,
        detail=f"{incident_id}: {status}, {starts} server start(s); next start exit {code}",
    )


@contextmanager
def running_target(folder: Path, port: int) -> Iterator[Target]:
    """The target's Redis up for the block, down after it whatever happened."""
    target = Target(folder, port)
    target.local.up()
    try:
        yield target
    finally:
        target.local.down()


def run_matrix(folder: Path, port: int, points: tuple[str, ...], runs: int) -> list[Case]:
    with running_target(folder, port) as target:
        return [one_case(target, point) for point in points for _ in range(runs)]


def table(cases: list[Case]) -> str:
    header = (
        f"{'kill point':<20} {'runs':>4} {'killed':>6} {'dup':>4} {'lost':>4} {'stuck':>5} {'doubt':>5} {'fixed':>5}"
    )
    lines = [header, "-" * len(header)]
    for point in dict.fromkeys(case.point for case in cases):
        group = [case for case in cases if case.point == point]
        lines.append(
            f"{point:<20} "
            + " ".join(
                f"{value:>6}"
                for value in (
                    len(group),
                    sum(c.killed for c in group),
                    sum(c.duplicated for c in group),
                    sum(c.lost for c in group),
                    sum(c.stuck for c in group),
                    sum(c.in_doubt for c in group),
                    sum(c.resolved for c in group),
                )
            )
        )
    return "\n".join(lines)


def failures(cases: list[Case]) -> list[Case]:
    """Cases that broke a promise: a duplicate, a lost or stuck incident, a step in doubt, no fix."""
    return [c for c in cases if c.duplicated or c.lost or c.stuck or c.in_doubt or not c.resolved or not c.killed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per kill point")
    parser.add_argument("--points", default=",".join(POINTS), help="comma-separated kill points")
    args = parser.parse_args(argv)
    points = tuple(args.points.split(","))
    unknown = set(points) - set(POINTS)
    if unknown:
        parser.error(f"unknown kill point(s) {sorted(unknown)}; known: {', '.join(POINTS)}")
    with tempfile.TemporaryDirectory(prefix="opsgraph-kill-") as folder:
        started = time.monotonic()
        cases = run_matrix(Path(folder), free_port(), points, args.runs)
    print(table(cases))
    print(f"\n{len(cases)} runs in {time.monotonic() - started:.0f} s on {os.cpu_count()} cores")
    for case in failures(cases):
        print(f"FAILED {case.point}: {case.detail}")
    return 1 if failures(cases) else 0


if __name__ == "__main__":
    sys.exit(main())
