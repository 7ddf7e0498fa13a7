"""The kill -9 matrix, one run per kill point: nothing duplicated, lost, stuck or left in doubt.

`bench/kill_matrix.py --runs 10` is the full matrix; this runs each point once on a real
private redis-server through the real CLI (watch, approve, incidents repair).
"""

from __future__ import annotations

from pathlib import Path

from support import free_port

from bench.kill_matrix import POINTS, failures, run_matrix, table


def test_a_worker_killed_at_any_point_leaves_nothing_repeated_lost_stuck_or_in_doubt(tmp_path: Path) -> None:
    cases = run_matrix(tmp_path, free_port(), POINTS, runs=1)
    assert [case.point for case in cases] == list(POINTS)
    assert failures(cases) == [], table(cases) + "\n" + "\n".join(case.detail for case in failures(cases))
