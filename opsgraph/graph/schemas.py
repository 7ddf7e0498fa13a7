"""The typed records that flow through an incident: snapshots, incidents, diagnoses, plans.

They are Pydantic models so that anything produced by a reasoning backend (a runbook
today, a language model later) is validated before the policy engine sees it. The
graph state stores them as plain JSON (see `state.py`) so that checkpoints, LangGraph
Studio and the SDK all see the same readable data.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from opsgraph.tools.data_safety import DataCheck
from opsgraph.tools.risk import Risk


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Snapshot(_Record):
    """One probe of one resource: its metrics, the verdict and why."""

    resource: str
    kind: str
    health: Health
    symptom: str | None = Field(None, description="Machine name of what is wrong, e.g. redis_memory_pressure")
    reasons: list[str] = []
    metrics: dict[str, float | int | str | None] = {}
    # Every unhealthy finding by symptom (the `symptom` above names the one that leads).
    findings: dict[str, Health] = {}
    taken_at: float

    def unhealthy_symptoms(self) -> dict[str, Health]:
        if self.findings:
            return self.findings
        return {self.symptom: self.health} if self.symptom and self.health is not Health.HEALTHY else {}


class Incident(_Record):
    incident_id: str
    resource: str
    kind: str
    symptom: str
    fingerprint: str = Field(description="resource + symptom: the same fault gives the same fingerprint")
    severity: Health
    fault_started_at: float = Field(description="When the fault began, if known (injection time), else first seen")
    detected_at: float


class Hypothesis(_Record):
    cause: str
    likelihood: Annotated[float, Field(ge=0, le=1)]
    evidence_for: list[str] = []
    evidence_against: list[str] = []


class Diagnosis(_Record):
    root_cause: str
    symptom: str
    evidence: list[str]
    hypotheses: list[Hypothesis] = []
    confidence: Annotated[float, Field(ge=0, le=1)]
    severity: Health
    backend: str = Field(description="Which reasoning backend produced this (runbook, a model name)")
    tokens: dict[str, int] = Field(default_factory=dict, description="Model usage: input_tokens, output_tokens")
    fallback: str | None = Field(None, description="Why a model's answer was replaced by the runbook's, if it was")


class PlanStep(_Record):
    tool: str
    args: dict[str, Any]
    rationale: str
    expected_effect: str
    undo: str | None = None

    def digest(self) -> str:
        """Fingerprint of exactly what would run: an approval is bound to it."""
        canonical = json.dumps({"tool": self.tool, "args": self.args}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Plan(_Record):
    steps: list[PlanStep]
    summary: str
    backend: str
    tokens: dict[str, int] = Field(default_factory=dict, description="Model usage: input_tokens, output_tokens")
    fallback: str | None = Field(None, description="Why a model's plan was replaced by the runbook's, if it was")
    # A plan written after reading tool output or logs may have been steered by them.
    informed_by_untrusted_text: bool = False


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
    decision: str = Field(description="approve or reject")
    by: str
    digests: list[str] = Field(description="The exact steps (by digest) this answer covers")
    comment: str | None = None
    at: float


class ActionRecord(_Record):
    index: int
    tool: str
    args: dict[str, Any]
    status: str = Field(description="ok, error, skipped, refused")
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
