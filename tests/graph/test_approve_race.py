"""Two answers at the same moment on a non-idempotent step: it runs once, and its run is in the ledger.

`bench/approve_race.py --pairs 20` is the full measurement; this runs two pairs of each kind
(approve vs approve, approve vs a starting watcher) through the real CLI on a real Redis.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import free_port

from bench.approve_race import KINDS, run_pairs, table

pytestmark = pytest.mark.crash  # concurrent processes racing: `make bench-crash` (the suite's 15-minute budget)


def test_concurrent_answers_run_the_restart_exactly_once_and_record_it(tmp_path: Path) -> None:
    pairs = run_pairs(tmp_path, free_port(), KINDS, pairs=2)
    broken = [pair for pair in pairs if not pair.ok]
    assert broken == [], table(pairs) + "\n" + "\n".join(pair.detail for pair in broken)
