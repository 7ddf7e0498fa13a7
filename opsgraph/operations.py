"""What every operator-facing entry point can do: look, start an incident graph, answer an approval.

The chat and `opsgraph serve`'s REST API are two faces of this one service, on the same graph,
checkpoints, ledger and settings as the CLI and `watch`: an incident paused by any of them is
found here (its checkpoint, or the LangGraph server in `OPSGRAPH_LANGGRAPH_URL` for one Studio paused), and answering it
resumes exactly that interrupt under the run lease, so two operators clicking Approve at
once run the plan once. Every method is synchronous and may block for seconds (probes,
a whole graph run): the Chainlit app and the API call them from a worker thread.

Nothing here decides who may approve: the answer carries the logged-in operator's name
and the approval node judges it (roles, digests, expiry) like any other answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from opsgraph.graph.context import Context
from opsgraph.graph.ledger import OPEN_STATUSES, Ledger
from opsgraph.graph.nodes.detector import new_incident_id
from opsgraph.graph.runtime import (
    IncidentBusy,
    NodeListener,
    NotWaiting,
    RunResult,
    incident_graph,
    pending_request,
    resume_incident,
    start_incident,
    thread_state,
)
from opsgraph.settings import load_settings
from opsgraph.tools.inventory import Resource
from opsgraph.tools.probes import probe_all
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.snapshot import Health, Snapshot


@dataclass(frozen=True)
class Pending:
    """An approval request some incident waits on, and where its graph is paused."""

    incident_id: str
    request: dict[str, Any]
    server: str | None = None  # the LangGraph server holding the interrupt; None: this state folder

    @property
    def digests(self) -> list[str]:
        return [step["digest"] for step in self.request["steps"]]


class AnswerRefused(RuntimeError):
    """An answer that was not applied: someone else answered first, or the graph refused it (the message says why)."""


class Operations:
    """The inventory, ledger and incident graphs of one state folder, as operators see them."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.state_dir = Path(context.state_dir)

    @classmethod
    def from_settings(cls) -> Self:
        """The service on the inventory, state folder and approval mode the settings name (as the CLI's defaults)."""
        settings = load_settings()
        return cls(Context(inventory_path=settings.inventory, state_dir=settings.home, approval=settings.approval))

    @property
    def ledger(self) -> Ledger:
        return self.context.ledger

    @property
    def resources(self) -> list[Resource]:
        return list(self.context.inventory.resources)

    # looking ---------------------------------------------------------------
    def health(self) -> list[Snapshot]:
        """Probe every resource once, now."""
        return probe_all(self.context.inventory)

    def incidents(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest incidents first, as the ledger lists them."""
        return self.ledger.incidents(limit)

    def open_incidents(self) -> list[dict[str, Any]]:
        return [row for row in self.ledger.incidents(200) if row["status"] in OPEN_STATUSES]

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident's full record — report, approvals, actions — with secrets redacted."""
        record = self.ledger.incident(incident_id)
        if record is None:
            return None
        record["approvals"] = self.ledger.approvals(incident_id)
        record["actions"] = self.ledger.actions(incident_id)
        return redact_value(record)

    def last_incident(self) -> dict[str, Any] | None:
        rows = self.ledger.incidents(1)
        return self.incident(rows[0]["incident_id"]) if rows else None

    def actions_between(self, since: float, until: float) -> list[dict[str, Any]]:
        """Every step OpsGraph started in [since, until), oldest first, with its incident and resource."""
        rows = [row for row in self.ledger.intents_since(since) if row["at"] < until]
        return redact_value(rows)

    def pending(self) -> list[Pending]:
        """Every approval request waiting now, from this state folder's checkpoints or the LangGraph server."""
        waiting = self.ledger.ids_with_status("awaiting_approval")
        found: list[Pending] = []
        if not waiting:
            return found
        with incident_graph(self.state_dir) as graph:
            for incident_id in waiting:
                request = pending_request(graph, incident_id)
                if request is not None:
                    found.append(Pending(incident_id, request))
                elif (server := load_settings().langgraph_url) is not None:
                    found += self._pending_on_server(server, incident_id)
        return found

    def diagnosis(self, incident_id: str) -> dict[str, Any] | None:
        """The diagnosis an incident's graph holds (why it wants what it plans), from its checkpoint."""
        with incident_graph(self.state_dir) as graph:
            values = thread_state(graph, incident_id).values
        diagnosis = values.get("diagnosis") if isinstance(values, dict) else None
        return redact_value(diagnosis) if isinstance(diagnosis, dict) else None

    def pending_for(self, incident_id: str) -> Pending | None:
        return next((p for p in self.pending() if p.incident_id == incident_id), None)

    @staticmethod
    def _pending_on_server(server: str, incident_id: str) -> list[Pending]:
        from opsgraph.graph.remote import RemoteError, pending_on_server

        try:
            request = pending_on_server(server, incident_id)
        except RemoteError:
            return []  # the server is down or forgot the thread: nothing to approve there now
        return [Pending(incident_id, request, server)] if request is not None else []

    # acting ------------------------------------------------------------------
    def new_incident_id(self, resource: str) -> str:
        """An id for a new incident on `resource` (chosen first, so the caller knows it before the run starts)."""
        self.context.inventory.get(resource)  # KeyError with the known names for a typo
        return new_incident_id(resource)

    def start_fix(self, resource: str, incident_id: str, on_node: NodeListener | None = None) -> RunResult:
        """Open incident `incident_id` on `resource` and run its graph until it ends or waits for an approval."""
        with incident_graph(self.state_dir) as graph:
            return start_incident(graph, self.context, resource, incident_id, time.time(), on_node)

    def answer(self, pending: Pending, answer: dict[str, Any], on_node: NodeListener | None = None) -> RunResult:
        """Resume the paused graph with the operator's answer; `AnswerRefused` when it was not applied.

        An answer the graph judged and refused (role, expiry, other digests) comes back as a result
        whose request is pending again with its `error`: the caller shows it and asks again.
        """
        if pending.server is not None:
            from opsgraph.graph.remote import RemoteError, resume_on_server

            try:
                return resume_on_server(pending.server, pending.incident_id, answer)
            except RemoteError as error:
                raise AnswerRefused(str(error)) from error
        with incident_graph(self.state_dir) as graph:
            try:
                return resume_incident(graph, self.context, pending.incident_id, answer, on_node)
            except (IncidentBusy, NotWaiting) as lost:  # another operator (or a watcher) got there first
                raise AnswerRefused(f"{lost}; your answer was not applied") from lost


def unhealthy(snapshots: list[Snapshot]) -> list[Snapshot]:
    return [s for s in snapshots if s.health is not Health.HEALTHY]
