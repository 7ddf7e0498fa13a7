"""Read-only tool access for reasoning backends, with a record of every call made.

Reading is allowed unattended under every approval setting, so this is the only door
a backend gets: a mutating tool asked for here is refused, not run.
"""

from __future__ import annotations

from typing import Any

from opsgraph.agents.compaction import compact
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.redaction import redact_value
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.spec import ToolContext

READ_OUTPUT_CHARS = 800  # what a timeline entry keeps of a read's output (the reasoning saw it whole)


class ReadOnlyTools:
    def __init__(self, ctx: ToolContext, timeout_s: float) -> None:
        self._ctx = ctx
        self._timeout_s = timeout_s
        self.calls: list[tuple[str, dict[str, Any], ToolOutcome]] = []

    def __call__(self, tool: str, args: dict[str, Any]) -> ToolOutcome:
        spec = CATALOGUE.get(tool)
        if spec is not None and spec.risk is not Risk.READ:
            outcome = ToolOutcome(ok=False, error=f"{tool} is {spec.risk}, not read-only: refused", duration_s=0.0)
        else:
            outcome = run_tool(tool, args, self._ctx, self._timeout_s)
        self.calls.append((tool, args, outcome))
        return outcome

    def timeline(self, node: str, at: float) -> list[dict[str, Any]]:
        """One timeline entry per read made, for the incident record, with what it read (compacted,
        redacted): the evidence a diagnosis or plan rests on, for whoever reviews it (the chat shows it)."""
        return [
            {
                "at": at,
                "node": node,
                "event": f"read {tool}({args}) -> {'ok' if o.ok else o.error}",
                "output": compact(redact_value(o.output), READ_OUTPUT_CHARS) if o.ok else None,
            }
            for tool, args, o in self.calls
        ]
