"""Each step's effect happens once: claim it, or wait for whoever has it, or settle what a dead worker left.

Two processes may reach the same step — two operators approving at the same moment, a
watcher resuming what an `approve` is running, LangGraph re-running a node after a crash.
The ledger's claim (one INSERT) picks exactly one to call the tool; the others wait for its
result. A claim whose worker died (intent, no result) is in doubt: it is settled by looking
at the target — did the server's identity change? — and recorded as done or not done, never
left for a human to guess. A step settled as not done may be attempted once more under a new
key; an idempotent step in doubt is simply not done yet, since repeating it changes nothing.
"""

from __future__ import annotations

import time
from functools import partial

from opsgraph.graph.context import Context
from opsgraph.graph.failpoints import AFTER_INTENT, AFTER_RESULT, AFTER_TOOL_CALL, failpoint
from opsgraph.graph.ledger import Intent, Ledger, run_recorded
from opsgraph.graph.owner import Owner
from opsgraph.graph.schemas import ActionRecord, ReviewedStep
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.runner import ToolOutcome, run_tool, time_budget
from opsgraph.tools.spec import ToolContext

NOT_DONE = "not_done"  # a step settled after a crash as never having taken effect
_POLL_S = 0.1
_WAIT_MARGIN_S = 30.0  # beyond the tool timeout: a winner's data check and bookkeeping


def _observe(tool: str, args: dict[str, object], tools: ToolContext) -> str | None:
    spec = CATALOGUE[tool]
    if spec.observe is None:
        return None
    return spec.observe(tools.resource(str(args["resource"])), tools)


def settle(ledger: Ledger, intent: Intent, tools: ToolContext) -> ActionRecord:
    """Decide an in-doubt step by looking at its target, and record the verdict as its result."""
    spec = CATALOGUE.get(intent.tool)
    if spec is None or spec.observe is None:
        took_effect, why = False, "idempotent step: not counted as done; running it again changes nothing twice"
    else:
        now = _observe(intent.tool, intent.args, tools)
        took_effect = now is not None and now != intent.observed
        if took_effect:
            why = f"the target is a new server instance ({intent.observed} -> {now}): the step took effect"
        elif now is None:
            why = "no server instance answers: the step did not bring it up"
        else:
            why = f"the same server instance still runs ({now}): the step did not take effect"
    at = time.time()
    record = ActionRecord(
        index=intent.index,
        tool=intent.tool,
        args=intent.args,
        status="ok" if took_effect else NOT_DONE,
        output={"settled_after_crash": why, "worker": str(intent.owner) if intent.owner else "unknown"},
        error=None if took_effect else f"interrupted by a crash; settled: {why}",
        started_at=intent.at,
        finished_at=at,
    )
    return ledger.record_result(intent.key, intent.incident_id, intent.plan_no, record)


def _await_result(ctx: Context, key: str) -> ActionRecord:
    """Another live process holds the step: wait for its result, or settle it if that process dies."""
    ledger = ctx.ledger
    first = ledger.intent(key)
    name = str(first.args.get("resource", "")) if first is not None else ""
    resource = ctx.tools.inventory.get(name) if ctx.tools.inventory.has(name) else None
    budget = time_budget(resource, ctx.tool_timeout_s) + _WAIT_MARGIN_S
    deadline = time.monotonic() + budget
    while True:
        if (result := ledger.result_for(key)) is not None:
            return result
        intent = ledger.intent(key)
        assert intent is not None  # a claim that was lost has an intent
        if not intent.owner_alive:
            return settle(ledger, intent, ctx.tools)
        if time.monotonic() > deadline:
            now = time.time()
            return ActionRecord(
                index=intent.index,
                tool=intent.tool,
                args=intent.args,
                status="refused",
                error=f"{intent.owner} is still running this step after {budget:.0f} s; not running it a second time",
                started_at=now,
                finished_at=now,
            )
        time.sleep(_POLL_S)


def run_once(ctx: Context, key: str, incident_id: str, plan_no: int, step: ReviewedStep) -> ActionRecord:
    """The step's result: run here when this process wins the claim, else the winner's (or the settled) result."""
    ledger, tool, args = ctx.ledger, step.step.tool, step.step.args
    owner = Owner.here()
    claim = ledger.claim(key, incident_id, plan_no, step.index, tool, args, owner, _observe(tool, args, ctx.tools))
    if claim.result is not None:
        return claim.result
    if not claim.won:
        return _await_result(ctx, key)
    failpoint(AFTER_INTENT)
    call = partial(run_tool, tool, args, ctx.tools, ctx.tool_timeout_s)

    def call_then_maybe_die() -> ToolOutcome:
        outcome = call()
        failpoint(AFTER_TOOL_CALL)
        return outcome

    record = ledger.record_result(key, incident_id, plan_no, run_recorded(step.index, tool, args, call_then_maybe_die))
    failpoint(AFTER_RESULT)
    return record
