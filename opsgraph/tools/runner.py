"""Run one catalogue tool: validate its arguments, bound its time, turn failures into data.

A tool that fails (target down, bad state, timeout) yields an error outcome the
reasoning backend can read; it never crashes the incident graph.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pydantic import BaseModel, ValidationError

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.spec import ToolContext

log = logging.getLogger(__name__)


class ToolOutcome(BaseModel):
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    duration_s: float


def run_tool(name: str, raw_args: dict[str, Any], ctx: ToolContext, timeout_s: float) -> ToolOutcome:
    """Validate and run a declared tool; anything undeclared or malformed is refused here too."""
    started = time.monotonic()

    def failed(message: str) -> ToolOutcome:
        return ToolOutcome(ok=False, error=message, duration_s=time.monotonic() - started)

    spec = CATALOGUE.get(name)
    if spec is None:
        return failed(f"unknown tool {name!r}: not in the catalogue")
    try:
        args = spec.args_model.model_validate(raw_args)
    except ValidationError as error:
        return failed(f"invalid arguments for {name}: {error.errors(include_url=False)}")
    if not ctx.inventory.has(args.resource):
        return failed(f"resource {args.resource!r} is not in the inventory")

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{name}")
    try:
        output = pool.submit(spec.run, args, ctx).result(timeout=timeout_s)
    except FutureTimeout:
        return failed(f"{name} did not finish within {timeout_s:.0f} s")
    except Exception as error:
        log.warning("tool %s failed", name, exc_info=True)
        return failed(f"{name} failed: {type(error).__name__}: {error}")
    finally:
        pool.shutdown(wait=False)
    return ToolOutcome(ok=True, output=output, duration_s=time.monotonic() - started)
