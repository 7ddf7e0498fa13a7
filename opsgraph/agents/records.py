"""The records of reasoning: the incident a backend is asked about, and its diagnosis and plan.

They are what every reasoning backend (the runbook, a language model) takes and returns,
so they live with the backends. Pydantic models: anything a backend produces is validated
before the policy engine sees it. The graph state stores them as plain JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from opsgraph.tools.snapshot import Health


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertEvidence(_Record):
    """The alert that started an incident (Alertmanager or another webhook): evidence, never an order.

    Its labels and annotations are whatever the sender wrote, so a model reads them framed as
    untrusted data like tool output; the detector still probes the resource before anything is done.
    """

    source: str = Field(description="alertmanager, or webhook:<sender>")
    name: str = Field(description="The alert's name (Alertmanager's alertname label)")
    fingerprint: str = Field(description="The sender's identity of this alert: repeats carry the same one")
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at: float | None = Field(None, description="When the sender says the alert began firing")


class Incident(_Record):
    incident_id: str
    resource: str
    kind: str
    symptom: str
    fingerprint: str = Field(description="resource + symptom: the same fault gives the same fingerprint")
    severity: Health
    fault_started_at: float = Field(description="When the fault began, if known (injection time), else first seen")
    detected_at: float
    alert: AlertEvidence | None = Field(None, description="The alert that started this incident, if one did")


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


class PlanRevision(_Record):
    """An operator's change to plan `of_plan`, asked at its approval, and what became of it.

    As asked it has no `note`; the plan that answers it carries it with the backend's note.
    """

    of_plan: int
    by: str
    change: str
    unchanged: bool = Field(
        False,
        description="The steps are those of plan `of_plan`: the change was not understood, changed nothing, "
        "or the policy refused its result (the note says which)",
    )
    note: str = Field("", description="What the backend did with the change, or why the steps are unchanged")


class Plan(_Record):
    steps: list[PlanStep]
    summary: str
    backend: str
    tokens: dict[str, int] = Field(default_factory=dict, description="Model usage: input_tokens, output_tokens")
    fallback: str | None = Field(None, description="Why a model's plan was replaced by the runbook's, if it was")
    # A plan written after reading tool output or logs may have been steered by them.
    informed_by_untrusted_text: bool = False
    revision: PlanRevision | None = Field(None, description="Set when an operator's change produced this plan")
