"""`opsgraph watch` as a real process: one incident per fault, approvals from another process, clean SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support import Stack, redis_resource, running_stack

from opsgraph.graph.schemas import Health
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.probes import probe


@contextmanager
def watching(stack: Stack, approval: str) -> Iterator[subprocess.Popen[str]]:
    command = [
        sys.executable, "-m", "opsgraph", "watch", "--inventory", str(stack.inventory_path),
        "--state-dir", str(stack.state_dir), "--approval", approval, "--interval", "0.2",
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


def test_one_fault_opens_exactly_one_incident_which_is_fixed(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "none") as watcher:
        ledger = stack.context().ledger
        wait_for(lambda: "watching" in (tmp_path / "watch.log").read_text(), "the watcher to start")
        fill_redis_memory(stack.inventory.get("cache"))

        wait_for(lambda: [i for i in ledger.incidents() if i["status"] == "resolved"], "a resolved incident")
        time.sleep(1.5)  # several more probe intervals: the healthy resource must not open anything
        incidents = ledger.incidents()
        assert len(incidents) == 1, incidents
        assert probe(stack.inventory.get("cache")).health is Health.HEALTHY
        report = ledger.incident(incidents[0]["incident_id"])
        assert report is not None and report["report"]["resolved"] is True
        output = stop(watcher, stack)
        assert "stopped" in output


def test_risky_plan_waits_and_is_approved_from_another_process(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "risky") as watcher:
        ledger = stack.context().ledger
        fill_redis_memory(stack.inventory.get("cache"))
        [waiting] = wait_for(lambda: ledger.ids_with_status("awaiting_approval"), "an incident awaiting approval")
        time.sleep(1.0)  # the fault is still there; the watcher must not open a second incident
        assert len(ledger.incidents()) == 1
        assert ledger.actions(waiting) == []

        listed = subprocess.run(
            [sys.executable, "-m", "opsgraph", "incidents", "--state-dir", str(stack.state_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert waiting in listed.stdout and "awaiting_approval" in listed.stdout

        approved = subprocess.run(
            [sys.executable, "-m", "opsgraph", "approve", waiting, "--by", "gina",
             "--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert "RESOLVED" in approved.stdout
        results = [row for row in ledger.actions(waiting) if row["phase"] == "result"]
        assert [(row["tool"], row["status"]) for row in results] == [("redis_scale_memory", "ok")]
        assert ledger.approvals(waiting)[0]["decided_by"] == "gina"

        again = subprocess.run(
            [sys.executable, "-m", "opsgraph", "approve", waiting,
             "--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert again.returncode == 1 and "not waiting for an approval" in again.stderr
        assert len([row for row in ledger.actions(waiting) if row["phase"] == "result"]) == 1
        stop(watcher, stack)
