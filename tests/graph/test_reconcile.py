"""The reconciler and the run lease: on the ledger and checkpoints alone, and on a paused incident of a real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from support import fast_context, redis_resource, running_stack

from opsgraph.agents.records import Incident
from opsgraph.graph.context import Context
from opsgraph.graph.ledger import Ledger
from opsgraph.graph.owner import Owner
from opsgraph.graph.reconcile import ABANDONED, reconcile
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.snapshot import Health


def _incident(incident_id: str) -> Incident:
    return Incident(
        incident_id=incident_id,
        resource="cache",
        kind="redis",
        symptom="redis_unreachable",
        fingerprint=f"cache:redis_unreachable:{incident_id}",
        severity=Health.FAILED,
        fault_started_at=0,
        detected_at=0,
    )


def _exited_owner() -> Owner:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return Owner(Owner.here().host, int(child.stdout), "gone", "token-of-a-dead-worker")


def _context(tmp_path: Path) -> Context:
    inventory = tmp_path / "opsgraph.yaml"
    inventory.write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))
    return fast_context(inventory, tmp_path / "state")


def test_an_incident_killed_before_its_first_checkpoint_is_closed_as_abandoned_with_why(tmp_path: Path) -> None:
    context = _context(tmp_path)
    context.ledger.open_incident(_incident("inc-killed"))
    context.ledger.acquire_run("inc-killed", _exited_owner())  # its worker took the lease, then died
    with incident_graph(Path(context.state_dir)) as graph:
        repairs, unfinished = reconcile(graph, context)
    assert unfinished == []
    assert [(r.incident_id, r.action) for r in repairs] == [("inc-killed", ABANDONED)]
    record = context.ledger.incident("inc-killed")
    assert record is not None and record["status"] == ABANDONED
    assert "killed before" in record["report"]["outcome_detail"]


def test_an_incident_run_by_a_langgraph_server_is_not_ours_to_repair(tmp_path: Path) -> None:
    """Opened through Studio: its checkpoints live in the server, so the local ones know nothing of it."""
    context = _context(tmp_path)
    context.ledger.open_incident(_incident("inc-studio"))
    with incident_graph(Path(context.state_dir)) as graph:
        repairs, unfinished = reconcile(graph, context)
    assert (repairs, unfinished) == ([], [])
    record = context.ledger.incident("inc-studio")
    assert record is not None and record["status"] == "open"


def test_the_run_lease_goes_to_one_live_owner_and_is_taken_over_from_a_dead_one(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    first, second = Owner.here(), Owner.here()
    assert ledger.acquire_run("inc-1", first) is None
    assert ledger.acquire_run("inc-1", second) == first  # busy: the holder is this live process
    ledger.release_run("inc-1", first)
    assert ledger.acquire_run("inc-1", second) is None
    assert ledger.acquire_run("inc-2", _exited_owner()) is None
    assert ledger.acquire_run("inc-2", first) is None  # the dead worker's lease is taken over
    assert ledger.run_holder("inc-2") == first


def test_an_incident_paused_at_an_approval_is_marked_awaiting_whatever_the_ledger_said(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        context = stack.context()
        with incident_graph(stack.state_dir) as graph:
            paused = start_incident(graph, context, "cache", "inc-paused")
            assert paused.pending is not None
            context.ledger.set_status("inc-paused", "open")  # as a kill between the two writes would leave it
            repairs, unfinished = reconcile(graph, context)
        assert (unfinished, [(r.incident_id, r.action) for r in repairs]) == ([], [("inc-paused", "awaiting")])
        record = context.ledger.incident("inc-paused")
        assert record is not None and record["status"] == "awaiting_approval"
