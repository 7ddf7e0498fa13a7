"""Running incident graphs from a process: the SQLite checkpointer, start and resume.

One thread per incident (thread id = incident id). State is checkpointed after every
node into `<state_dir>/checkpoints.sqlite`, so a graph paused at the approval
interrupt can be resumed by another process — a later CLI call, the chat, or Studio.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from opsgraph.graph.context import Context
from opsgraph.graph.state import IncidentInput, IncidentState
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


@contextmanager
def incident_graph(state_dir: Path) -> Iterator[IncidentGraph]:
    """The compiled graph with a SQLite checkpointer under the state folder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_dir / "checkpoints.sqlite", check_same_thread=False, timeout=10)
    try:
        yield build_graph().compile(checkpointer=SqliteSaver(conn), name="opsgraph")
    finally:
        conn.close()


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
    for chunk in graph.stream(payload, config, context=context, stream_mode="updates"):
        for node, update in chunk.items():
            if on_node is not None and node != "__interrupt__" and isinstance(update, dict):
                on_node(node, update)
    snapshot = graph.get_state(config)
    pending = snapshot.interrupts[0].value if snapshot.interrupts else None
    return RunResult(incident_id=incident_id, values=dict(snapshot.values), pending=pending)


def start_incident(
    graph: IncidentGraph,
    context: Context,
    resource: str,
    incident_id: str,
    fault_started_at: float | None = None,
    on_node: NodeListener | None = None,
) -> RunResult:
    """Run a new incident thread until it ends or waits for an approval."""
    payload: IncidentInput = {"resource": resource, "incident_id": incident_id}
    if fault_started_at is not None:
        payload["fault_started_at"] = fault_started_at
    return _drive(graph, payload, incident_id, context, on_node)


def pending_request(graph: IncidentGraph, incident_id: str) -> dict[str, Any] | None:
    """The approval request an incident is waiting on, if it is waiting."""
    interrupts = graph.get_state(_thread(incident_id)).interrupts
    return interrupts[0].value if interrupts else None


def is_unfinished(graph: IncidentGraph, incident_id: str) -> bool:
    """True when the thread stopped between nodes (a crash or a kill), not at an interrupt or the end."""
    state = graph.get_state(_thread(incident_id))
    return bool(state.next) and not state.interrupts


def continue_incident(
    graph: IncidentGraph, context: Context, incident_id: str, on_node: NodeListener | None = None
) -> RunResult:
    """Run an interrupted-by-crash thread on from its last checkpoint (completed nodes are not repeated)."""
    return _drive(graph, None, incident_id, context, on_node)


def resume_incident(
    graph: IncidentGraph,
    context: Context,
    incident_id: str,
    answer: dict[str, Any],
    on_node: NodeListener | None = None,
) -> RunResult:
    """Answer a pending approval (`Command(resume=answer)`) and run on."""
    if pending_request(graph, incident_id) is None:
        raise ValueError(f"incident {incident_id} is not waiting for an approval")
    return _drive(graph, Command(resume=answer), incident_id, context, on_node)
