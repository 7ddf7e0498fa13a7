"""The reasoning interface: what every backend (the runbook, a chat model) provides.

A backend reads evidence through `ReadTool` — which can only run read-only catalogue
tools — and returns data: a `Diagnosis` and a `Plan`. It never executes anything; the
policy engine and the executor decide what happens to its plan.
"""

from __future__ import annotations

from typing import Any, Protocol

from opsgraph.agents.records import Diagnosis, Incident, Plan
from opsgraph.tools.inventory import Resource
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Snapshot


class ReadTool(Protocol):
    def __call__(self, tool: str, args: dict[str, Any]) -> ToolOutcome: ...


class Reasoner(Protocol):
    name: str

    def diagnose(self, incident: Incident, snapshot: Snapshot, read: ReadTool, feedback: str | None) -> Diagnosis: ...

    def plan(
        self, incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadTool, feedback: str | None
    ) -> Plan: ...
