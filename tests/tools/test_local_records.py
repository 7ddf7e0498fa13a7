"""A torn `resource.json` (finding 3 of issue 10) is named, and affects only its own server.

Two real redis-servers; one's record is emptied or overwritten the way a kill during a plain
`write_text` left it. Status, restart and down of the other keep working.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Stack, redis_resource, running_stack

from opsgraph.tools.environments.local import LocalStackError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource("cache"), redis_resource("sessions")]) as running:
        record = running.state_dir / "local" / "cache" / "resource.json"
        good = record.read_bytes()
        try:
            yield running
        finally:
            record.write_bytes(good)  # so that the fixture's `down` can stop this server too


TORN = {"empty": b"", "cut": b'{"name": "cache", "ki', "binary": b"\xff\xfe\x00garbage"}


@pytest.mark.parametrize("torn", TORN.values(), ids=TORN.keys())
def test_a_torn_record_is_named_and_the_other_servers_still_work(stack: Stack, torn: bytes) -> None:
    record = stack.state_dir / "local" / "cache" / "resource.json"
    record.write_bytes(torn)

    statuses = {status.name: status for status in stack.local.status()}
    assert statuses["sessions"].running and statuses["sessions"].problem is None
    problem = statuses["cache"].problem
    assert problem is not None and str(record) in problem and "opsgraph up" in problem
    assert statuses["cache"].pid is not None  # its pid file does not depend on the record

    with pytest.raises(LocalStackError, match=re.escape(str(record))):
        stack.local.restart("cache")
    before = statuses["sessions"].pid
    restarted = stack.local.restart("sessions")
    assert restarted.running and restarted.pid != before
    assert record.read_bytes() == torn  # nothing guessed or overwritten


def test_status_on_the_command_line_shows_the_torn_record_on_its_row(stack: Stack) -> None:
    record = stack.state_dir / "local" / "cache" / "resource.json"
    record.write_bytes(b"")
    command = [sys.executable, "-m", "opsgraph", "status", "--json"]
    command += ["--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["sessions"]["state"] == "running" and rows["sessions"]["problem"] is None
    assert rows["cache"]["state"] == "record_unreadable"
    assert f"{record} is empty" in rows["cache"]["problem"]


def test_down_stops_the_others_then_names_the_torn_record(stack: Stack) -> None:
    record = stack.state_dir / "local" / "cache" / "resource.json"
    record.write_bytes(b"")
    with pytest.raises(LocalStackError, match=re.escape(f"{record} is empty")):
        stack.local.down()
    statuses = {status.name: status for status in stack.local.status()}
    assert statuses["sessions"].pid is None
    assert statuses["cache"].pid is not None  # left for a human: OpsGraph no longer knows how it was started
