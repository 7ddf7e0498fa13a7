"""Run one catalogue tool: validate its arguments, bound its time, turn failures into data.

A tool that fails (target down, bad state, timeout) yields an error outcome the
reasoning backend can read; it never crashes the incident graph. A disruptive or
destructive step is bracketed by data fingerprints (`data_safety`), whoever calls it —
the graph's executor or an MCP client — so that "the data survived" is checked, not assumed.
Every outcome leaves here redacted (`redaction`): a session's query text or a log line
may hold a password, and this is the one place all tool output passes before it reaches
a ledger row, an MCP client, a diagnosis or a report.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pydantic import BaseModel

from opsgraph.tools.data_safety import DataCheck, check_after, fingerprint
from opsgraph.tools.guard import admit
from opsgraph.tools.inventory import Resource
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.spec import ToolContext, ToolError

log = logging.getLogger(__name__)
# Around a cloud operation's own deadline: the calls before and after the wait (reads, the data check).
_OPERATION_MARGIN_S = 30.0


class ToolOutcome(BaseModel):
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    duration_s: float
    data_check: DataCheck | None = None  # disruptive and destructive steps: did the data survive?


def time_budget(resource: Resource | None, timeout_s: float) -> float:
    """How long one call on `resource` may take: `timeout_s`, or for a GCP resource its operation deadline.

    A real reset, failover or tier change takes minutes, and its tool waits for the
    operation up to the inventory's `gcp.operation_timeout_s`; cutting it off sooner would
    leave the step in doubt while the operation goes on.
    """
    if resource is None or resource.gcp is None:
        return timeout_s
    return max(timeout_s, resource.gcp.operation_timeout_s + _OPERATION_MARGIN_S)


def run_tool(name: str, raw_args: dict[str, Any], ctx: ToolContext, timeout_s: float) -> ToolOutcome:
    """Run a declared tool once the guard admits the call (see `guard`): every path comes through here."""
    started = time.monotonic()

    def failed(message: str) -> ToolOutcome:
        return ToolOutcome(ok=False, error=message, duration_s=time.monotonic() - started)

    admission = admit(name, raw_args, ctx.inventory)
    if admission.refusal is not None:
        return redact_value(failed(f"refused: {admission.refusal}"))
    spec, args, resource = admission.spec, admission.args, admission.resource
    assert spec is not None and args is not None and resource is not None  # admitted
    before = fingerprint(resource, ctx.state_dir) if spec.checks_data else None
    timeout_s = time_budget(resource, timeout_s)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{name}")
    try:
        outcome = ToolOutcome(ok=True, output=pool.submit(spec.run, args, ctx).result(timeout=timeout_s), duration_s=0)
    except FutureTimeout:
        outcome = failed(f"{name} did not finish within {timeout_s:.0f} s")
    except ToolError as error:  # the tool says what is wrong (a server down, a refusal): one line is enough
        log.warning("tool %s failed: %s", name, error)
        outcome = failed(f"{name} failed: {type(error).__name__}: {error}")
    except Exception as error:  # a bug or a surprise: the traceback is what someone needs to fix it
        log.warning("tool %s failed", name, exc_info=True)
        outcome = failed(f"{name} failed: {type(error).__name__}: {error}")
    finally:
        pool.shutdown(wait=False)
    check = check_after(resource, ctx.state_dir, before, spec.may_change) if spec.checks_data else None
    return redact_value(outcome.model_copy(update={"duration_s": time.monotonic() - started, "data_check": check}))
