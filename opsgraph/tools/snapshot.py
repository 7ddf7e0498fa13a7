"""What a probe saw: one look at one resource, graded HEALTHY / DEGRADED / FAILED.

The record of the tools layer's probes; the graph, the reasoning backends and the
verifier all read it. Pydantic, so that a snapshot restored from a checkpoint is
validated like a fresh one.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"


class Snapshot(BaseModel):
    """One probe of one resource: its metrics, the verdict and why."""

    model_config = ConfigDict(extra="forbid")

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
