"""`opsgraph pause` / `resume`: every worker of a state folder stops starting mutating actions (issue 10)."""

from __future__ import annotations

import time
from pathlib import Path

from support import ScriptedReasoner, redis_resource, run_unattended, running_stack, stop, wait_for, watching

from opsgraph.graph.control import Controls
from opsgraph.tools.faults import fill_redis_memory


def test_pause_stops_a_running_watch_from_acting_until_resume(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "none") as watcher:
        ledger = stack.context().ledger
        log = tmp_path / "watch.log"
        wait_for(lambda: "watching" in log.read_text(), "the watcher to start")
        paused = stack.opsgraph("pause", "--by", "ann", "--reason", "db migration")
        assert paused.returncode == 0, paused.stderr
        assert "OpsGraph is paused by ann" in paused.stdout

        fill_redis_memory(stack.inventory.get("cache"))
        wait_for(lambda: "not acted on: OpsGraph is paused by ann" in log.read_text(), "the pause to be reported")
        time.sleep(1.0)  # several probe intervals: still nothing done, and the pause said once
        assert [row for row in ledger.incidents() if row["status"] != "paused"] == []
        assert all(ledger.actions(row["incident_id"]) == [] for row in ledger.incidents())
        assert log.read_text().count("OpsGraph is paused by ann") == 1
        assert "(db migration)" in log.read_text()

        resumed = stack.opsgraph("resume", "--by", "bob")
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed by bob (was paused by ann)" in resumed.stdout
        wait_for(lambda: ledger.ids_with_status("resolved"), "the resumed watcher to fix the cache")
        latest = Controls(ledger).latest("*")
        assert latest is not None and latest.state == "resumed" and latest.by == "bob"
        stop(watcher, stack)


def test_the_executor_refuses_mutating_steps_while_paused_but_diagnosis_goes_on(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        ledger = stack.context().ledger
        Controls(ledger).pause("ann", "freeze")
        fill_redis_memory(stack.inventory.get("cache"))
        scale = {"tool": "redis_scale_memory", "args": {"resource": "cache", "maxmemory_mb": 64}}
        result = run_unattended(
            stack.inventory_path, stack.state_dir, "cache", "inc-paused", reasoner=ScriptedReasoner([scale])
        )
        assert result.values["outcome"] == "paused"
        assert "OpsGraph is paused by ann" in result.values["outcome_detail"]
        assert "diagnosis" in result.values  # read-only work is not stopped
        assert ledger.actions("inc-paused") == []  # no intent: the step never started
        record = ledger.incident("inc-paused")
        assert record is not None and record["status"] == "paused"


def test_pause_of_one_resource_and_resume_without_a_pause(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        nothing = stack.opsgraph("resume", "--by", "bob")
        assert nothing.returncode == 1
        assert nothing.stderr.strip() == "error: OpsGraph is neither paused nor held"
        held = stack.opsgraph("pause", "--resource", "cache", "--by", "ann")
        assert held.returncode == 0, held.stderr
        hint = stack.opsgraph("resume", "--by", "bob")
        assert hint.returncode == 1 and "held or paused: cache; pass --resource" in hint.stderr
        stopped = Controls(stack.context().ledger).stop_for("cache")
        assert stopped is not None and stopped.by == "ann"
        assert stack.opsgraph("resume", "--resource", "cache", "--by", "bob").returncode == 0
        assert Controls(stack.context().ledger).stop_for("cache") is None
        typo = stack.opsgraph("pause", "--resource", "cahce", "--by", "ann")
        assert typo.returncode == 2 and "no resource named 'cahce'" in typo.stderr  # nothing paused by a typo
        assert Controls(stack.context().ledger).stops_in_force() == []
