"""The policy engine: plain code that decides, for every plan step, whether it may run.

The reasoning backend (runbook or model) only proposes; this module disposes. A step
is refused when the tools' guard (`opsgraph.tools.guard`, the same check every tool call
passes) refuses it: tool not in the catalogue, arguments that do not validate, resource
outside the incident's scope or the inventory, wrong kind or environment, risk above the
resource's ceiling, a resource limit broken. Otherwise the approval setting says whether
a human must say yes first — the one decision that is the graph's own.

Modes are the same decision under the names an operator uses: `read-only` (nothing
mutating runs), `review` (= approval all) and `autonomous` (= approval none). Globally
they are approval values; a resource's `mode` in the inventory can only tighten the
global one, never loosen it, so one line in the inventory cannot lift an operator's
`--approval all` (the stricter of the two wins).
"""

from __future__ import annotations

from enum import StrEnum

from opsgraph.agents.records import PlanStep
from opsgraph.graph.schemas import ReviewedStep, StepVerdict
from opsgraph.tools.guard import Admission, admit
from opsgraph.tools.inventory import Inventory, Resource
from opsgraph.tools.risk import Risk


class ApprovalMode(StrEnum):
    """Which steps wait for a human (listed from the loosest to the strictest)."""

    NONE = "none"  # nobody is asked: unattended runs; every other limit still holds (mode autonomous)
    RISKY = "risky"  # disruptive and destructive steps (the default)
    ALL = "all"  # every mutating step (mode review)
    READ_ONLY = "read-only"  # no mutating step runs at all: diagnosis only

    @property
    def strictness(self) -> int:
        return list(ApprovalMode).index(self)


# A resource's `mode` (inventory) as the approval mode it stands for.
RESOURCE_MODES = {"autonomous": ApprovalMode.NONE, "review": ApprovalMode.ALL, "read-only": ApprovalMode.READ_ONLY}


def mode_for(resource: Resource | None, mode: ApprovalMode) -> ApprovalMode:
    """The approval mode that holds for a step on `resource`: the stricter of the global one and its own."""
    if resource is None or resource.mode is None:
        return mode
    own = RESOURCE_MODES[resource.mode]
    return own if own.strictness > mode.strictness else mode


def _resource_name(admission: Admission) -> str:
    return admission.resource.name if admission.resource is not None else "this resource"


def needs_human(risk: Risk, mode: ApprovalMode) -> bool:
    if mode is ApprovalMode.NONE:
        return False
    if mode in (ApprovalMode.ALL, ApprovalMode.READ_ONLY):  # read-only refuses them first (review_step)
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
    mode = mode_for(admission.resource, mode)
    if mode is ApprovalMode.READ_ONLY and spec.risk is not Risk.READ:
        reason = f"{spec.risk} step: approval={mode} for {_resource_name(admission)}: nothing mutating runs"
        return verdict(StepVerdict.REFUSE, reason, spec.risk)
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
