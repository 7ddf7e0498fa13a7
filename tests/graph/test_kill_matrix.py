"""The kill -9 matrix, one run per kill point: nothing duplicated, lost, stuck or left in doubt.

`bench/kill_matrix.py --runs 10` is the full matrix; this runs each point once on a real
private redis-server through the real CLI (watch, approve, incidents repair).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from support import free_port

from bench.kill_matrix import POINTS, Target, failures, run_matrix, running_target, table, wait_for_pause
from opsgraph.graph.failpoints import AFTER_INTENT, AFTER_RESULT, AFTER_TOOL_CALL


@pytest.mark.crash  # a minute of kills: `make bench-crash` (the suite's 15-minute budget)
def test_a_worker_killed_at_any_point_leaves_nothing_repeated_lost_stuck_or_in_doubt(tmp_path: Path) -> None:
    cases = run_matrix(tmp_path, free_port(), POINTS, runs=1)
    assert [case.point for case in cases] == list(POINTS)
    assert failures(cases) == [], table(cases) + "\n" + "\n".join(case.detail for case in failures(cases))


def test_a_watcher_killed_after_its_unattended_restart_intent_is_finished_by_the_next_fix(tmp_path: Path) -> None:
    """The issue's case: `watch --approval none` dies right after the intent row; `fix` (not "duplicate") ends it."""
    target = Target(tmp_path, free_port())
    target.local.up()
    try:
        starts_before = target.starts()
        target.kill_server()
        code, output = target.run("watch", "--interval", "0.3", "--approval", "none", failpoint=AFTER_INTENT)
        assert code == -signal.SIGKILL, output
        [incident] = target.incidents()
        assert incident["status"] == "open"  # left mid-graph: the case that used to be stuck for ever

        code, output = target.run("fix", "--approval", "none", "--json")
        assert code == 0, output
        record = target.ledger.incident(str(incident["incident_id"]))
        assert record is not None and record["status"] == "resolved", output
        assert "duplicate" not in output
        assert target.starts() - starts_before == 1  # settled as not done, then restarted once
        assert target.ledger.in_doubt() == []
    finally:
        target.local.down()


def test_approve_on_an_incident_its_worker_left_mid_graph_runs_it_on(tmp_path: Path) -> None:
    with running_target(tmp_path, free_port()) as target:
        incident_id = wait_for_pause(target)
        killed, _ = target.run("approve", incident_id, "--by", "ann", failpoint=AFTER_RESULT)
        assert killed == -signal.SIGKILL
        code, output = target.run("approve", incident_id, "--by", "ann")
        assert code == 0, output
        assert "its worker died mid-graph; running it on from its checkpoint" in output
        record = target.ledger.incident(incident_id)
        assert record is not None and record["status"] == "resolved"


def test_incidents_repair_reports_what_it_settled_and_resumed_as_json_lines(tmp_path: Path) -> None:
    with running_target(tmp_path, free_port()) as target:
        incident_id = wait_for_pause(target)
        killed, _ = target.run("approve", incident_id, "--by", "ann", failpoint=AFTER_TOOL_CALL)
        assert killed == -signal.SIGKILL
        first = target.cli("incidents", "repair", "--json")
        stdout, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
        repairs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        assert [(r["incident_id"], r["repair"]) for r in repairs] == [
            (incident_id, "settled"),
            (incident_id, "unfinished"),
            (incident_id, "resumed"),
        ], repairs
        assert repairs[-1]["detail"] == "resolved"
        second = target.cli("incidents", "repair", "--json")  # nothing is left to do
        assert second.communicate(timeout=120)[0].strip() == "" and second.returncode == 0
        record = target.ledger.incident(incident_id)
        assert record is not None and record["status"] == "resolved"
        [result] = [row for row in target.ledger.actions(incident_id) if row["phase"] == "result"]
        assert result["status"] == "ok"  # settled as done: the restart had happened before the kill
