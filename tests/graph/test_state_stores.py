"""A state folder whose ledger or checkpoints were emptied or overwritten is refused with one clear error.

The stores come from real incident runs against a private redis-server (one paused at its
approval, one healthy probe), then are damaged the way finding 3 of issue 10 did it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import Stack, redis_resource, running_stack

from opsgraph.graph.ledger import Ledger
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.graph.stores import CHECKPOINTS_FILE, LEDGER_FILE, StateStoreError, check_state_stores
from opsgraph.tools.faults import fill_redis_memory

pytestmark = pytest.mark.timeout(120)

PAUSED = "inc-paused"
GARBAGE = b"this is not a database\n" * 200
# A valid header followed by junk: SQLite only finds out when it reads the first page.
BAD_PAGES = b"SQLite format 3\x00" + b"\xff" * 8192


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stores"), [redis_resource()]) as running:
        yield running


@pytest.fixture(scope="module")
def paused_stores(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger and checkpoints holding one incident that waits for an approval (the redis is left healthy)."""
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache)
    with incident_graph(stack.state_dir) as graph:
        paused = start_incident(graph, stack.context(), "cache", PAUSED)
    assert paused.pending is not None, paused.values.get("outcome_detail")
    stack.local.restart("cache")  # empty again: later probes of this stack see it healthy
    return _copy_stores(stack.state_dir, tmp_path_factory.mktemp("paused"))


def _copy_stores(source: Path, target: Path) -> Path:
    """The two store files (no connection is open, so SQLite has folded its WAL back in)."""
    for name in (LEDGER_FILE, CHECKPOINTS_FILE):
        assert not (source / f"{name}-wal").exists()
        shutil.copy2(source / name, target / name)
    return target


@pytest.fixture
def state(paused_stores: Path, tmp_path: Path) -> Path:
    """A private copy of the paused stores, with an inventory, for one test to damage."""
    folder = tmp_path / "state"
    folder.mkdir()
    _copy_stores(paused_stores, folder)
    (tmp_path / "opsgraph.yaml").write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))
    return folder


def _opsgraph(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "opsgraph", *args, "--state-dir", str(state)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=state.parent)


def _assert_one_error_line(result: subprocess.CompletedProcess[str], *names: Path) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    for name in names:
        assert str(name) in line


def _refused(state: Path) -> str:
    """The error both stores give on open: the ledger (every CLI command) and the graph (approve, watch)."""
    with pytest.raises(StateStoreError) as from_ledger:
        Ledger(state / LEDGER_FILE)
    with pytest.raises(StateStoreError) as from_graph, incident_graph(state):
        pass
    assert str(from_ledger.value) == str(from_graph.value)
    return str(from_ledger.value)


def test_a_fresh_folder_is_fine(tmp_path: Path) -> None:
    check_state_stores(tmp_path / "state")
    Ledger(tmp_path / "state" / LEDGER_FILE).incidents()
    with incident_graph(tmp_path / "state"):
        pass
    check_state_stores(tmp_path / "state")  # both files now exist, with nothing in them


def test_the_paused_stores_are_consistent(state: Path) -> None:
    check_state_stores(state)
    assert Ledger(state / LEDGER_FILE).incident(PAUSED)["status"] == "awaiting_approval"  # type: ignore[index]


def test_an_emptied_ledger_next_to_checkpoints_is_refused_naming_both(state: Path) -> None:
    (state / LEDGER_FILE).write_bytes(b"")  # `: > ledger.sqlite`
    message = _refused(state)
    assert str(state / LEDGER_FILE) in message and str(state / CHECKPOINTS_FILE) in message
    assert "is empty" in message and "Restore" in message
    assert (state / LEDGER_FILE).stat().st_size == 0  # not silently recreated

    listing = _opsgraph(state, "incidents")
    _assert_one_error_line(listing, state / LEDGER_FILE, state / CHECKPOINTS_FILE)
    approve = _opsgraph(state, "approve", PAUSED, "--by", "alice", "--inventory", str(state.parent / "opsgraph.yaml"))
    _assert_one_error_line(approve, state / LEDGER_FILE, state / CHECKPOINTS_FILE)
    assert (state / LEDGER_FILE).stat().st_size == 0


def test_a_deleted_ledger_next_to_checkpoints_is_refused(state: Path) -> None:
    (state / LEDGER_FILE).unlink()
    assert "is missing" in _refused(state)
    assert not (state / LEDGER_FILE).exists()


def test_emptied_checkpoints_next_to_an_awaiting_incident_are_refused(state: Path) -> None:
    (state / CHECKPOINTS_FILE).write_bytes(b"")  # `: > checkpoints.sqlite`
    message = _refused(state)
    assert str(state / CHECKPOINTS_FILE) in message and str(state / LEDGER_FILE) in message
    assert PAUSED in message

    approve = _opsgraph(state, "approve", PAUSED, "--by", "alice", "--inventory", str(state.parent / "opsgraph.yaml"))
    _assert_one_error_line(approve, state / CHECKPOINTS_FILE, state / LEDGER_FILE)


def test_an_incident_run_on_a_langgraph_server_needs_no_checkpoints_here(state: Path) -> None:
    """Such an incident shares the ledger but has no run lease row here: its checkpoints are the server's."""
    with sqlite3.connect(state / LEDGER_FILE) as conn:
        conn.execute("DELETE FROM runs WHERE incident_id = ?", (PAUSED,))
    conn.close()
    (state / CHECKPOINTS_FILE).write_bytes(b"")
    check_state_stores(state)


@pytest.mark.parametrize("damage", [GARBAGE, BAD_PAGES], ids=["garbage", "bad-pages"])
@pytest.mark.parametrize("name", [LEDGER_FILE, CHECKPOINTS_FILE])
def test_a_file_that_is_not_a_database_is_named(state: Path, name: str, damage: bytes) -> None:
    (state / name).write_bytes(damage)
    message = _refused(state)
    assert f"{state / name} is not a usable SQLite database" in message
    assert (state / name).read_bytes() == damage  # left for a human to look at

    listing = _opsgraph(state, "incidents")
    _assert_one_error_line(listing, state / name)


def test_checkpoints_of_healthy_probes_alone_are_not_a_lost_ledger(stack: Stack, tmp_path: Path) -> None:
    """A healthy probe opens no incident; a folder from before run leases has its checkpoints and no ledger."""
    state = tmp_path / "fresh"
    with incident_graph(state) as graph:
        result = start_incident(graph, stack.context(state_dir=str(state)), "cache", "inc-healthy")
    assert result.values["outcome"] == "healthy"
    (state / LEDGER_FILE).unlink()
    check_state_stores(state)
    assert Ledger(state / LEDGER_FILE).incidents() == []
