"""`opsgraph watch` as a real process: one incident per fault, approvals from another process, clean SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import ScriptedReasoner, redis_resource, running_stack, stop, wait_for, watching

from opsgraph.agents.records import Incident, Plan
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health


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


class CrashingReasoner(ScriptedReasoner):
    """Dies while planning, as a process killed mid-incident would stop between nodes."""

    def plan(self, *args: Any, **kwargs: Any) -> Plan:
        raise RuntimeError("killed while planning")


def test_a_watcher_finishes_an_incident_left_mid_graph(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        with incident_graph(stack.state_dir) as graph, pytest.raises(RuntimeError, match="killed while planning"):
            start_incident(graph, stack.context(reasoner=CrashingReasoner([])), "cache", "inc-crashed")
        ledger = stack.context().ledger
        assert ledger.ids_with_status("open") == ["inc-crashed"]

        with watching(stack, "none") as watcher:
            wait_for(lambda: ledger.ids_with_status("resolved") == ["inc-crashed"], "the crashed incident to finish")
            assert len(ledger.incidents()) == 1  # resumed, not re-opened as a new incident
            output = stop(watcher, stack)
        assert "resuming inc-crashed from its last checkpoint" in output


COOLDOWN_S = 8.0


def test_a_closed_fault_that_persists_reopens_only_after_the_cooldown(tmp_path: Path) -> None:
    cooldown = ["--cooldown", f"{COOLDOWN_S:g}"]
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "risky", *cooldown) as watcher:
        ledger = stack.context().ledger
        fill_redis_memory(stack.inventory.get("cache"))
        [first] = wait_for(lambda: ledger.ids_with_status("awaiting_approval"), "an incident awaiting approval")
        rejected = stack.opsgraph("reject", first, "--by", "hank")
        assert rejected.returncode == 0, rejected.stderr
        closed = ledger.incident(first)
        assert closed is not None and closed["status"] == "rejected"
        # The fault is still there, but its fingerprint is cooling down: through the first half of the
        # cooldown, by the ledger's own clock (however long the reject command took to exit), nothing reopens.
        while time.time() < closed["closed_at"] + COOLDOWN_S / 2:
            assert [row["incident_id"] for row in ledger.incidents()] == [first]
            time.sleep(0.2)

        [second] = wait_for(lambda: ledger.ids_with_status("awaiting_approval"), "the fault to open again")
        reopened = ledger.incident(second)
        assert reopened is not None
        assert reopened["opened_at"] - closed["closed_at"] >= COOLDOWN_S  # the ledger's own clock: cooldown honoured
        assert len(ledger.incidents()) == 2
        stop(watcher, stack)


def test_a_resource_held_by_a_data_safety_failure_is_left_alone_until_released(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        ledger = stack.context().ledger
        earlier = Incident(
            incident_id="inc-lost-data", resource="cache", kind="redis", symptom="redis_unreachable",
            fingerprint="cache:redis_unreachable", severity=Health.FAILED, fault_started_at=0.0, detected_at=0.0,
        )  # fmt: skip
        ledger.open_incident(earlier)
        ledger.close_incident("inc-lost-data", "data_safety_failure", {"outcome": "data_safety_failure"})
        fill_redis_memory(stack.inventory.get("cache"))
        with watching(stack, "none", "--cooldown", "0") as watcher:
            log = tmp_path / "watch.log"
            wait_for(lambda: "held by data-safety failure inc-lost-data" in log.read_text(), "the hold to be reported")
            time.sleep(1.0)  # several probe intervals: still nothing opened, and the hold said once
            assert [row["incident_id"] for row in ledger.incidents()] == ["inc-lost-data"]
            assert log.read_text().count("held by data-safety failure") == 1
            released = subprocess.run(
                [sys.executable, "-m", "opsgraph", "incidents", "release", "inc-lost-data", "--by", "ivy",
                 "--state-dir", str(stack.state_dir)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert released.returncode == 0, released.stderr
            wait_for(lambda: ledger.ids_with_status("resolved"), "the released resource to be fixed")
            stop(watcher, stack)
