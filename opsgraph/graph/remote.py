"""Incidents paused on a LangGraph server (Studio, `langgraph dev`, a deployment), answered from here.

A thread started through a LangGraph server lives in that server's checkpointer, not in
this process's `checkpoints.sqlite`; its ledger rows (shared through `OPSGRAPH_HOME`) say
it waits for an approval all the same. So that one approval flow serves every entry
point, `opsgraph approve` / `reject` reach such a thread through the LangGraph SDK: read
the pending request from the thread's state, resume it with `Command(resume=answer)`, and
wait for the run to end. The graph itself — policy, digest-bound approvals in the ledger,
the executor's idempotency keys — is the same code on the server, so the step still runs
exactly once. Thread id == incident id, as on every other path.
"""

from __future__ import annotations

from typing import Any

import httpx
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from opsgraph.graph.runtime import RunResult

GRAPH_ID = "opsgraph"  # the key under "graphs" in langgraph.json
_TIMEOUT_S = 120.0


class RemoteError(RuntimeError):
    """The LangGraph server did not answer, or does not know the incident; the message says which."""


def _unreachable(url: str, error: Exception) -> str:
    return f"the LangGraph server at {url} did not answer: {type(error).__name__}: {error}"


def pending_on_server(url: str, incident_id: str) -> dict[str, Any] | None:
    """The approval request the server's thread for this incident waits on, or None."""
    with get_sync_client(url=url, api_key=None, timeout=_TIMEOUT_S) as client:
        try:
            state = client.threads.get_state(incident_id)
        except (NotFoundError, UnprocessableEntityError):  # no such thread (the server's ids are UUIDs)
            return None
        except httpx.TransportError as error:
            raise RemoteError(_unreachable(url, error)) from None
    interrupts = state.get("interrupts") or []
    value = interrupts[0].get("value") if interrupts else None
    return value if isinstance(value, dict) else None


def resume_on_server(url: str, incident_id: str, answer: dict[str, Any]) -> RunResult:
    """Resume the server's thread with the answer and wait for the run to end (or pause again)."""
    with get_sync_client(url=url, api_key=None, timeout=_TIMEOUT_S) as client:
        try:
            values: Any = client.runs.wait(incident_id, GRAPH_ID, command={"resume": answer})
        except httpx.TransportError as error:
            raise RemoteError(_unreachable(url, error)) from None
    final = values if isinstance(values, dict) else {}
    return RunResult(incident_id=incident_id, values=final, pending=pending_on_server(url, incident_id))
