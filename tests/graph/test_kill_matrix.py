"""The kill -9 matrix, one run per kill point: nothing duplicated, lost, stuck or left in doubt.

`bench/kill_matrix.py --runs 10` is the full matrix; this runs each point once on a real
private redis-server through the real CLI (watch, approve, incidents repair).
"""

from __future__ import annotations

import signal
from pathlib import Path

from support import free_port

from bench.kill_matrix import POINTS, Target, failures, run_matrix, table
from opsgraph.graph.failpoints import AFTER_INTENT


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
