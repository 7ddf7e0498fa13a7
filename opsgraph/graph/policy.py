"""The policy engine: plain code that decides, for every plan step, whether it may run.

The reasoning backend (runbook or model) only proposes; this module disposes. A step
is refused when the tools' guard (`opsgraph.tools.guard`, the same check every tool call
passes) refuses it: tool not in the catalogue, arguments that do not validate, resource
outside the incident's scope or the inventory, wrong kind or environment, risk above the
resource's ceiling, a resource limit broken. Otherwise the approval setting says whether
a human must say yes first — the one decision that is the graph's own.
"""

from __future__ import annotations

from enum import StrEnum

from opsgraph.agents.records import PlanStep
from opsgraph.graph.schemas import ReviewedStep, StepVerdict
from opsgraph.tools.guard import admit
from opsgraph.tools.inventory import Inventory
from opsgraph.tools.risk import Risk


class ApprovalMode(StrEnum):
    """Which steps wait for a human."""

    RISKY = "risky"  # disruptive and destructive steps (the default)
    ALL = "all"  # every mutating step
    NONE = "none"  # nobody is asked: unattended runs; every other limit still holds


def needs_human(risk: Risk, mode: ApprovalMode) -> bool:
    if mode is ApprovalMode.NONE:
        return False
    if mode is ApprovalMode.ALL:
        return risk is not Risk.READ
    return risk in (Risk.DISRUPTIVE, Risk.DESTRUCTIVE)


def review_step(
    index: int, step: PlanStep, inventory: Inventory, scope: set[str], mode: ApprovalMode, untrusted: bool = False
) -> ReviewedStep:
    """Classify one step: RUN, ASK (approval first) or REFUSE, with the reason.

    `untrusted` marks a plan written after reading untrusted text (logs, tool output):
    its destructive steps always wait for a human, even when nobody is normally asked.
    """

    def verdict(kind: StepVerdict, reason: str, risk: Risk | None = None) -> ReviewedStep:
        return ReviewedStep(index=index, step=step, risk=risk, verdict=kind, reason=reason, digest=step.digest())

    admission = admit(step.tool, step.args, inventory, scope)
    spec = admission.spec
    if admission.refusal is not None:
        return verdict(StepVerdict.REFUSE, admission.refusal, spec.risk if spec is not None else None)
    assert spec is not None  # an admitted call always has its tool
    if needs_human(spec.risk, mode):
        return verdict(StepVerdict.ASK, f"{spec.risk} step: approval={mode} asks a human first", spec.risk)
    if untrusted and spec.risk is Risk.DESTRUCTIVE:
        return verdict(
            StepVerdict.ASK,
            "destructive step of a plan written after reading untrusted text: a human decides",
            spec.risk,
        )
    return verdict(StepVerdict.RUN, f"{spec.risk} step allowed unattended under approval={mode}", spec.risk)


def review_plan(
    steps: list[PlanStep], inventory: Inventory, scope: set[str], mode: ApprovalMode, untrusted: bool = False
) -> list[ReviewedStep]:
    return [review_step(index, step, inventory, scope, mode, untrusted) for index, step in enumerate(steps)]
