"""Running incident graphs from a process: the SQLite checkpointer, start and resume.

One thread per incident (thread id = incident id). State is checkpointed after every
node into `<state_dir>/checkpoints.sqlite`, synchronously (`durability="sync"`): the
next node starts only once the last one's checkpoint is on disk, so a kill can never
leave the ledger a step ahead of the checkpoint. A graph paused at the approval
interrupt can be resumed by another process — a later CLI call, the chat, or Studio —
but by one process at a time: each drive holds the incident's run lease in the ledger.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from opsgraph.graph.context import Context
from opsgraph.graph.failpoints import BEFORE_CHECKPOINT, failpoint
from opsgraph.graph.owner import Owner
from opsgraph.graph.state import IncidentInput, IncidentState
from opsgraph.graph.stores import check_state_stores
from opsgraph.graph.wiring import build_graph

IncidentGraph = CompiledStateGraph[IncidentState, Context, IncidentInput, IncidentState]
NodeListener = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class RunResult:
    incident_id: str
    values: dict[str, Any]
    pending: dict[str, Any] | None  # the approval request, while the graph waits for a human

    @property
    def report(self) -> dict[str, Any] | None:
        report = self.values.get("report")
        return report if isinstance(report, dict) else None


class IncidentBusy(RuntimeError):
    """Another live process is driving this incident right now."""


class NotWaiting(ValueError):
    """The incident waits for no approval (any more): answered already, or never asked."""


class _Checkpointer(SqliteSaver):
    """The SQLite checkpointer, with the failpoint "killed before the executor's writes are saved"."""

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        if any(channel == "actions" for channel, _ in writes):
            failpoint(BEFORE_CHECKPOINT)
        super().put_writes(config, writes, task_id, task_path)


@contextmanager
def incident_graph(state_dir: Path) -> Iterator[IncidentGraph]:
    """The compiled graph with a SQLite checkpointer under the state folder."""
    check_state_stores(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_dir / "checkpoints.sqlite", check_same_thread=False, timeout=10)
    try:
        checkpointer = _Checkpointer(conn)
        checkpointer.setup()  # now, not at first use: an empty file must never look like an emptied store
        yield build_graph().compile(checkpointer=checkpointer, name="opsgraph")
    finally:
        conn.close()


@contextmanager
def driving(context: Context, incident_id: str) -> Iterator[None]:
    """Hold the incident's run lease while this process drives its graph; IncidentBusy if another does."""
    owner = Owner.here()
    holder = context.ledger.acquire_run(incident_id, owner)
    if holder is not None:
        raise IncidentBusy(f"incident {incident_id} is being run by {holder} right now")
    try:
        yield
    finally:
        context.ledger.release_run(incident_id, owner)


def _thread(incident_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": incident_id}}


def _drive(
    graph: IncidentGraph,
    payload: IncidentInput | Command[Any] | None,
    incident_id: str,
    context: Context,
    on_node: NodeListener | None,
) -> RunResult:
    config = _thread(incident_id)
    for chunk in graph.stream(payload, config, context=context, stream_mode="updates", durability="sync"):
        for node, update in chunk.items():
            if on_node is not None and node != "__interrupt__" and isinstance(update, dict):
                on_node(node, update)
    return _result(graph, incident_id)


def _result(graph: IncidentGraph, incident_id: str) -> RunResult:
    snapshot = graph.get_state(_thread(incident_id))
    pending = snapshot.interrupts[0].value if snapshot.interrupts else None
    return RunResult(incident_id=incident_id, values=dict(snapshot.values), pending=pending)


def start_incident(
    graph: IncidentGraph,
    context: Context,
    resource: str,
    incident_id: str,
    fault_started_at: float | None = None,
    on_node: NodeListener | None = None,
    alert: dict[str, Any] | None = None,
) -> RunResult:
    """Run a new incident thread until it ends or waits for an approval (`alert`: the evidence that asked)."""
    payload: IncidentInput = {"resource": resource, "incident_id": incident_id}
    if fault_started_at is not None:
        payload["fault_started_at"] = fault_started_at
    if alert is not None:
        payload["alert"] = alert
    with driving(context, incident_id):
        return _drive(graph, payload, incident_id, context, on_node)


def pending_request(graph: IncidentGraph, incident_id: str) -> dict[str, Any] | None:
    """The approval request an incident is waiting on, if it is waiting."""
    interrupts = graph.get_state(_thread(incident_id)).interrupts
    return interrupts[0].value if interrupts else None


def thread_state(graph: IncidentGraph, incident_id: str) -> StateSnapshot:
    """Where the incident's graph is: its values, the nodes due next and any pending interrupt."""
    return graph.get_state(_thread(incident_id))


def is_unfinished(graph: IncidentGraph, incident_id: str) -> bool:
    """True when the thread stopped between nodes (a crash or a kill), not at an interrupt or the end."""
    state = thread_state(graph, incident_id)
    return bool(state.next) and not state.interrupts


def continue_incident(
    graph: IncidentGraph, context: Context, incident_id: str, on_node: NodeListener | None = None
) -> RunResult:
    """Run an interrupted-by-crash thread on from its last checkpoint (completed nodes are not repeated)."""
    with driving(context, incident_id):
        if not is_unfinished(graph, incident_id):  # another process finished it meanwhile
            return _result(graph, incident_id)
        return _drive(graph, None, incident_id, context, on_node)


def resume_incident(
    graph: IncidentGraph,
    context: Context,
    incident_id: str,
    answer: dict[str, Any],
    on_node: NodeListener | None = None,
) -> RunResult:
    """Answer a pending approval (`Command(resume=answer)`) and run on.

    Checked under the run lease: of two operators approving at once, one resumes the graph and
    the other is told it is busy, or, once the first is done, that nothing waits any more.
    """
    with driving(context, incident_id):
        if pending_request(graph, incident_id) is None:
            raise NotWaiting(f"incident {incident_id} is not waiting for an approval")
        return _drive(graph, Command(resume=answer), incident_id, context, on_node)
