"""Caps on what OpsGraph does by itself, and the crash-loop rule, checked before every mutating step.

Counted from the ledger's intent rows (every caller writes one before a tool runs: the
graph's executor, the MCP server), so several workers share one budget and a restart of
OpsGraph forgets nothing:

- per resource, at most `resource_action_cap` disruptive or destructive actions within
  `resource_action_window_s` (default 3 per 15 min);
- all resources together, at most `global_action_cap` mutating actions per hour;
- a crash loop: the same restart (a non-idempotent tool, same arguments) already ran on
  this resource within the window and the resource is failing again. Repeating a restart
  that did not stick only hides the fault, so it is escalated instead. Other disruptive
  steps may repeat within the cap: ending a new batch of blocking sessions or idle clients
  is a new act, not the same one.

A spent resource cap or a crash loop escalates and holds the resource (see `control`) until a
human resumes it; counting restarts from that resume, so the human's decision is a fresh
start. The global budget holds nothing: it refills as the hour rolls on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from opsgraph.agents.records import Incident
from opsgraph.graph.context import Context
from opsgraph.graph.control import Controls
from opsgraph.graph.ledger import Ledger, action_key
from opsgraph.graph.schemas import ReviewedStep
from opsgraph.settings import Settings
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.risk import Risk

GLOBAL_WINDOW_S = 3600.0
# Action statuses of steps refused here; the verifier escalates on them without probing.
RefusalStatus = Literal["paused", "crash_loop", "capped", "over_budget"]
HOLDING = ("crash_loop", "capped")  # these hold the resource until a human resumes it


@dataclass(frozen=True)
class Refusal:
    status: RefusalStatus
    why: str


def _risk(tool: str) -> Risk | None:
    spec = CATALOGUE.get(tool)
    return spec.risk if spec is not None else None


def is_disruptive(tool: str) -> bool:
    return _risk(tool) in (Risk.DISRUPTIVE, Risk.DESTRUCTIVE)


def is_restart(tool: str) -> bool:
    """The catalogue's non-idempotent tools are its restarts (each declares how to see one happened)."""
    spec = CATALOGUE.get(tool)
    return spec is not None and not spec.idempotent


def is_mutating(tool: str) -> bool:
    risk = _risk(tool)
    return risk is not None and risk is not Risk.READ


def _at(row: dict[str, Any]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(row["at"]))


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The caps in force (from the Context of a graph run, or the settings for a path without one: MCP)."""

    resource_actions: int
    resource_window_s: float
    global_actions: int

    @classmethod
    def of(cls, ctx: Context) -> Limits:
        return cls(
            resource_actions=ctx.resource_action_cap,
            resource_window_s=ctx.resource_action_window_s,
            global_actions=ctx.global_action_cap,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            resource_actions=settings.resource_action_cap,
            resource_window_s=settings.resource_action_window_s,
            global_actions=settings.global_action_cap,
        )


def global_refusal(ledger: Ledger, limits: Limits, now: float | None = None) -> Refusal | None:
    """Why no mutating action may start anywhere now (the hourly budget is spent), or None."""
    now = time.time() if now is None else now
    since = max(now - GLOBAL_WINDOW_S, Controls(ledger).resumed_at("*"))
    spent = [row for row in ledger.intents_since(since) if is_mutating(row["tool"])]
    if len(spent) < limits.global_actions:
        return None
    return Refusal(
        "over_budget",
        f"global action budget spent: {len(spent)} mutating actions in the last hour "
        f"(OPSGRAPH_GLOBAL_ACTION_CAP={limits.global_actions}); a human must look",
    )


def refusal_for(ledger: Ledger, limits: Limits, tool: str, args: dict[str, Any], key: str) -> Refusal | None:
    """Why this tool call must not start now — paused, a crash loop, a spent cap — or None. Read tools pass.

    Every entry point that runs a mutating tool calls it just before it claims the step; `key`
    is the step's idempotency key: its own earlier intents (that key, or a further attempt of it,
    `key/attempt-N`, after a crash) are no repeat.
    """
    if not is_mutating(tool):
        return None
    resource = str(args.get("resource"))
    controls = Controls(ledger)
    if (stop := controls.stop_for(resource)) is not None:
        return Refusal("paused", stop.describe())
    now = time.time()
    if is_disruptive(tool):
        since = max(now - limits.resource_window_s, controls.resumed_at(resource))
        done = [
            row
            for row in ledger.intents_since(since)
            if row["resource"] == resource and is_disruptive(row["tool"]) and not _same_step(row, key)
        ]
        same = [row for row in done if is_restart(tool) and row["tool"] == tool and json.loads(row["args"]) == args]
        if same:
            return Refusal(
                "crash_loop",
                f"crash loop: {tool} already ran on {resource} at {_at(same[-1])} ({same[-1]['incident_id']}) "
                f"and {resource} is failing again; a fix that does not stick is escalated, not repeated",
            )
        if len(done) >= limits.resource_actions:
            return Refusal(
                "capped",
                f"action cap: {len(done)} disruptive actions on {resource} within "
                f"{limits.resource_window_s / 60:g} min (OPSGRAPH_RESOURCE_ACTION_CAP={limits.resource_actions}); "
                "a human must look",
            )
    return global_refusal(ledger, limits, now)


def _same_step(row: dict[str, Any], key: str) -> bool:
    return bool(row["idempotency_key"] == key or row["idempotency_key"].startswith(f"{key}/"))


def action_budget_refusal(ctx: Context, incident: Incident, plan_no: int, step: ReviewedStep) -> Refusal | None:
    """The executor's check of one plan step (see `refusal_for`); the step's resource defaults to the incident's."""
    args = {"resource": incident.resource, **step.step.args}
    key = action_key(incident.incident_id, plan_no, step.index)
    return refusal_for(ctx.ledger, Limits.of(ctx), step.step.tool, args, key)


def crash_loop_after(actions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The restart this incident tried, if any: the verifier's half of the crash-loop rule.

    A resource still failing verification after a restart did not recover from it: it came
    back and fell again (the call succeeded), or it died while starting or could not be
    restarted at all (the call failed). Either way another identical restart would not
    help, and retrying it every cooldown is the storm this rule exists to stop: escalate
    once and hold. Restarts are the catalogue's non-idempotent tools (`is_restart`).
    """
    for action in actions:
        if action.get("status") in ("ok", "error") and is_restart(str(action.get("tool", ""))):
            return action
    return None
