"""`opsgraph serve`'s HTTP face: the REST API, the alert webhooks, `/healthz` and `/metrics`.

Every route is a thin call into the shared operations service (`opsgraph.operations`) — the same
code the CLI and the chat run — so there is no second implementation of looking, fixing or
approving. An approval answered here carries the token's name as `by` and is judged by the
approval node (roles, digests, expiry) like any other answer.

`/healthz` and `/metrics` answer without a token, as exporters do: they say whether the watcher
sweeps and how OpsGraph is doing, nothing secret. Everything under `/api` and `/alerts` needs a
bearer token (`opsgraph.serve.auth`); with no token configured they refuse every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib.metadata import version
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StringConstraints

from opsgraph.graph.fixing import summary
from opsgraph.graph.watch import Say, Watcher
from opsgraph.operations import AnswerRefused, Operations
from opsgraph.serve.alerts import NOT_STARTED, AlertIntake, AlertmanagerPayload, Receipt, WebhookPayload
from opsgraph.serve.auth import Caller, Scope, Tokens
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.redaction import redact_value


class MetricsSource(Protocol):
    def render(self) -> tuple[bytes, str]: ...


@dataclass
class ServeRuntime:
    """What the routes reach: the operations service, the running watcher and alert intake."""

    operations: Operations
    watcher: Watcher
    intake: AlertIntake
    tokens: Tokens
    metrics: MetricsSource | None
    probing: bool
    interval_s: float
    watcher_alive: Callable[[], bool]
    started_at: float
    background: Executor  # runs answered approvals and fixes asked with ?wait=false
    say: Say  # what a background run reports


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
IncidentId = Annotated[str, Path(min_length=1, max_length=200, description="An incident id, e.g. inc-...-cache-1a2b3c")]
Limit = Annotated[int, Query(ge=1, le=500, description="How many, newest first.")]
Wait = Annotated[
    bool,
    Query(description="false: answer 202 at once and run in the background (follow GET /api/incidents/{id})."),
]
_NOT_STARTED: dict[int | str, dict[str, Any]] = {
    503: {"description": "An alert's incident could not be started (the watcher is not running): send it again."}
}
_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted (?wait=false): running in the background; follow the incident."}
}


class DecisionBody(BaseModel):
    """An answer to the approval an incident waits on, bound to the digests of the steps it shows."""

    decision: Literal["approve", "reject", "revise"]
    digests: Annotated[list[Name], Field(min_length=1, max_length=50)] | None = Field(
        None,
        description="The digests of exactly the waiting steps (GET /api/approvals); required to approve or revise.",
    )
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None
    change: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        None, description="With revise: what to change, in words ('only 128 MB', 'use TOOL instead')."
    )


class AlertsAnswer(BaseModel):
    received: int
    alerts: list[dict[str, Any]]


_bearer = HTTPBearer(auto_error=False, description="A token of OPSGRAPH_API_TOKENS (name:scope:token).")


def create_app(runtime: ServeRuntime) -> FastAPI:
    app = FastAPI(
        title="OpsGraph",
        version=version("opsgraph"),
        description="The autonomous on-call SRE's API: resources, incidents, approvals, alerts in, the catalogue.",
    )
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    ops = runtime.operations

    def caller_with(scope: Scope) -> Callable[..., Caller]:
        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
            if not runtime.tokens.configured:
                raise _refused(status.HTTP_401_UNAUTHORIZED, "no API tokens are configured: set OPSGRAPH_API_TOKENS")
            caller = runtime.tokens.caller(credentials.credentials) if credentials is not None else None
            if caller is None:
                raise _refused(
                    status.HTTP_401_UNAUTHORIZED, "send Authorization: Bearer <a token of OPSGRAPH_API_TOKENS>"
                )
            if not caller.scope.allows(scope):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, f"{caller.name}'s token has scope {caller.scope}, not {scope}"
                )
            return caller

        return check

    reader = Depends(caller_with(Scope.READ))
    approver = Depends(caller_with(Scope.APPROVE))
    ingester = Depends(caller_with(Scope.INGEST))

    @app.get("/healthz", tags=["service"])
    def healthz() -> JSONResponse:
        """200 while the watcher runs and (when it probes) swept recently; 503 otherwise."""
        last = runtime.watcher.last_sweep_at
        age = None if last is None else round(time.time() - last, 3)
        stale_after = max(3 * runtime.interval_s, 30.0)
        starting = last is None and time.time() - runtime.started_at < stale_after
        sweeping = starting or (age is not None and age <= stale_after)
        ok = runtime.watcher_alive() and sweeping
        body = {"status": "ok" if ok else "down", "watcher_alive": runtime.watcher_alive(), "probing": runtime.probing,
                "last_sweep_age_s": age}  # fmt: skip
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["service"], response_class=Response)
    def metrics() -> Response:
        """OpsGraph's own metrics, in Prometheus' text format."""
        if runtime.metrics is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "metrics are off in this process")
        body, content_type = runtime.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/api/resources", tags=["resources"])
    def resources(_: Caller = reader) -> list[dict[str, Any]]:
        """Every inventory resource with its latest probe (from the watcher's last sweep) and open incident."""
        latest = runtime.watcher.latest
        return [
            {
                "name": resource.name,
                "kind": resource.kind,
                "environment": resource.environment,
                "health": latest[resource.name].model_dump(mode="json") if resource.name in latest else None,
                "open_incident": ops.ledger.open_incident_on(resource.name),
            }
            for resource in ops.resources
        ]

    @app.post("/api/scan", tags=["resources"])
    def scan(_: Caller = reader) -> list[dict[str, Any]]:
        """Probe every resource now (read-only)."""
        return [snapshot.model_dump(mode="json") for snapshot in ops.health()]

    @app.post("/api/resources/{name}/fix", tags=["resources"], responses=_ACCEPTED)
    def fix(
        name: Annotated[str, Path(min_length=1, max_length=200)], wait: Wait = True, caller: Caller = approver
    ) -> Any:
        """Open an incident on the resource and run it until it ends or waits for an approval."""
        if not ops.context.inventory.has(name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no resource {name!r} in the inventory")
        incident_id = ops.new_incident_id(name)
        running = runtime.watcher.reserve(name, incident_id)
        if running is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"incident {running} is running on {name} already")

        def run() -> dict[str, Any]:
            try:
                return redact_value(summary(ops.start_fix(name, incident_id)))
            finally:
                runtime.watcher.unreserve(name, incident_id)

        if wait:
            return run()
        return _later(runtime, incident_id, f"the fix {caller.name} asked for", run)

    @app.get("/api/incidents", tags=["incidents"])
    def incidents(limit: Limit = 50, _: Caller = reader) -> list[dict[str, Any]]:
        """The newest incidents first."""
        return ops.incidents(limit)

    @app.get("/api/incidents/{incident_id}", tags=["incidents"])
    def incident(incident_id: IncidentId, _: Caller = reader) -> dict[str, Any]:
        """One incident: its report (with the timeline), approvals, actions, the alerts that named it, notifications."""
        record = ops.incident(incident_id)
        if record is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
        record["alerts"] = redact_value(ops.ledger.alerts_for(incident_id))
        record["notifications"] = ops.ledger.notifications(incident_id)
        waiting = ops.pending_for(incident_id) if record["status"] == "awaiting_approval" else None
        record["pending_approval"] = waiting.request if waiting is not None else None
        return record

    @app.get("/api/approvals", tags=["approvals"])
    def approvals(_: Caller = reader) -> list[dict[str, Any]]:
        """Every approval request waiting now, with the digests an answer must name."""
        return [{"incident_id": p.incident_id, "digests": p.digests, "request": p.request} for p in ops.pending()]

    @app.post("/api/approvals/{incident_id}", tags=["approvals"], responses=_ACCEPTED)
    def decide(incident_id: IncidentId, body: DecisionBody, wait: Wait = True, caller: Caller = approver) -> Any:
        """Approve, reject or revise what the incident waits on, as the token's caller; runs it on."""
        if ops.ledger.incident(incident_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
        pending = ops.pending_for(incident_id)
        if pending is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{incident_id} is not waiting for an approval")
        if body.decision != "reject" and body.digests is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, f"to {body.decision}, name the digests you reviewed"
            )
        if body.digests is not None and sorted(body.digests) != sorted(pending.digests):
            shown = " ".join(pending.digests)
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"not what {incident_id} waits on ({shown}): nothing recorded"
            )
        if body.decision == "revise" and body.change is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "a revise needs `change`: what to change, in words"
            )
        answer: dict[str, Any] = {"decision": body.decision, "by": caller.name, "digests": pending.digests,
                                  "comment": body.comment}  # fmt: skip
        if body.decision == "revise":
            answer["change"] = body.change

        def run() -> dict[str, Any]:
            try:
                result = ops.answer(pending, answer)
            except AnswerRefused as refused:
                raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
            if result.pending is not None and result.pending.get("error"):
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"refused: {result.pending['error']}; {incident_id} still waits"
                )
            return redact_value(summary(result))

        if wait:
            return run()
        return _later(runtime, incident_id, f"{caller.name}'s {body.decision}", run)

    @app.get("/api/tools", tags=["tools"])
    def tools(_: Caller = reader) -> list[dict[str, Any]]:
        """The tool catalogue: name, target kind, risk, undo, argument schema."""
        return [spec.record() for spec in sorted(CATALOGUE.values(), key=lambda s: s.name)]

    @app.get("/api/alerts", tags=["alerts"])
    def alerts(limit: Limit = 50, _: Caller = reader) -> list[dict[str, Any]]:
        """The newest alerts received, with what was done about each."""
        return redact_value(ops.ledger.alerts(limit))

    @app.post("/alerts/alertmanager", tags=["alerts"], response_model=AlertsAnswer, responses=_NOT_STARTED)
    def alertmanager(payload: AlertmanagerPayload, _: Caller = ingester) -> Any:
        """Alertmanager's webhook (version 4): each firing alert mapped to a resource opens at most one incident."""
        return _answer(runtime.intake.receive([(a.status, a.evidence()) for a in payload.alerts]))

    @app.post("/alerts/webhook", tags=["alerts"], response_model=AlertsAnswer, responses=_NOT_STARTED)
    def webhook(payload: WebhookPayload, _: Caller = ingester) -> Any:
        """Any other sender's alerts, in OpsGraph's own small format."""
        return _answer(runtime.intake.receive(payload.evidence()))

    return app


def _later(runtime: ServeRuntime, incident_id: str, what: str, run: Callable[[], dict[str, Any]]) -> JSONResponse:
    """Run `run` in the background and answer 202; what it ends with is reported (and in the ledger)."""

    def report() -> None:
        try:
            record = run()
        except HTTPException as refused:
            runtime.say(f"{incident_id}: {what} was not applied: {refused.detail}", "warning", incident_id=incident_id)
            return
        outcome = record.get("outcome") or "unknown"
        runtime.say(f"{incident_id}: {what} ran: {outcome}", incident_id=incident_id, outcome=outcome)

    runtime.background.submit(report)
    body = {"incident_id": incident_id, "accepted": True, "follow": f"/api/incidents/{incident_id}"}
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)


def _answer(receipts: list[Receipt]) -> Any:
    """200 with a receipt per alert; 503 (the sender retries) when an incident could not be started."""
    body = AlertsAnswer(received=len(receipts), alerts=[redact_value(vars(r)) for r in receipts])
    if any(receipt.outcome == NOT_STARTED for receipt in receipts):
        return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return body


def _refused(code: int, detail: str) -> HTTPException:
    return HTTPException(code, detail, headers={"WWW-Authenticate": "Bearer"})


async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    """A 422 that says what is wrong and where (`body.alerts.0.startsAt`), without echoing the input."""
    problems = [
        {"where": ".".join(str(part) for part in problem.get("loc", ())), "problem": problem.get("msg", "invalid")}
        for problem in error.errors()
    ]
    summary_text = "; ".join(f"{p['where']}: {p['problem']}" for p in problems[:5])
    return JSONResponse({"detail": f"invalid request: {summary_text}", "problems": problems}, status_code=422)
