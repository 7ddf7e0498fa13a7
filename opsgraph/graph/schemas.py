"""The graph's own records: policy verdicts, approvals, executed actions and verifications.

What the reasoning backends produce (incidents, diagnoses, plans) lives in
`opsgraph.agents.records`, what probes produce (snapshots) in `opsgraph.tools.snapshot`.
The graph state stores all of them as plain JSON (see `state.py`) so that checkpoints,
LangGraph Studio and the SDK all see the same readable data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsgraph.agents.records import PlanStep
from opsgraph.tools.data_safety import DataCheck
from opsgraph.tools.risk import Risk
from opsgraph.tools.snapshot import Snapshot


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepVerdict(StrEnum):
    """What the policy engine decided about one step."""

    RUN = "run"  # may run without a human
    ASK = "ask"  # needs an operator's approval first
    REFUSE = "refuse"  # never runs: unknown tool, bad args, out of scope, over the limit


class ReviewedStep(_Record):
    """A plan step after the policy engine looked at it."""

    index: int
    step: PlanStep
    risk: Risk | None
    verdict: StepVerdict
    reason: str
    digest: str


class Approval(_Record):
    decision: str = Field(description="approve, reject or revise (a change asked, in `comment`)")
    by: str
    digests: list[str] = Field(description="The exact steps (by digest) this answer covers")
    comment: str | None = None
    at: float


class ActionRecord(_Record):
    index: int
    tool: str
    args: dict[str, Any]
    status: str = Field(
        description="ok, error, skipped, refused, not_done (settled after a crash), paused, capped, crash_loop, "
        "over_budget"
    )
    output: Any = None
    error: str | None = None
    started_at: float
    finished_at: float
    data_check: DataCheck | None = Field(None, description="Disruptive steps: data fingerprints before and after")

    @property
    def data_lost(self) -> list[str]:
        """What changed in the data that this step was not declared to change."""
        return self.data_check.unexpected if self.data_check else []


class Verification(_Record):
    healthy: bool
    recovered_at: float | None = Field(None, description="First healthy probe of the window that held")
    snapshot: Snapshot
    checks: int
    detail: str
