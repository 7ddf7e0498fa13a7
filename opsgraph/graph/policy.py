"""The policy engine: plain code that decides, for every plan step, whether it may run.

The reasoning backend (runbook or model) only proposes; this module disposes. A step
is refused when its tool is not in the catalogue, its arguments do not validate, its
resource is outside the incident's scope or the inventory, its risk is above the
resource's ceiling, or a resource limit would be broken. Otherwise the approval
setting says whether a human must say yes first.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError

from opsgraph.graph.schemas import PlanStep, ReviewedStep, StepVerdict
from opsgraph.tools.catalogue import CATALOGUE
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

    spec = CATALOGUE.get(step.tool)
    if spec is None:
        return verdict(StepVerdict.REFUSE, f"tool {step.tool!r} is not in the catalogue")
    try:
        args = spec.args_model.model_validate(step.args)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in error.errors())
        return verdict(StepVerdict.REFUSE, f"invalid arguments for {step.tool}: {problems}", spec.risk)
    if not inventory.has(args.resource):
        return verdict(StepVerdict.REFUSE, f"resource {args.resource!r} is not in the inventory", spec.risk)
    if args.resource not in scope:
        return verdict(StepVerdict.REFUSE, f"resource {args.resource!r} is outside this incident's scope", spec.risk)
    resource = inventory.get(args.resource)
    if (misfit := spec.fits(resource)) is not None:
        return verdict(StepVerdict.REFUSE, misfit, spec.risk)
    if spec.risk.exceeds(resource.policy.max_risk):
        return verdict(
            StepVerdict.REFUSE,
            f"{step.tool} is {spec.risk}; {resource.name} allows at most {resource.policy.max_risk}",
            spec.risk,
        )
    if spec.check_limits is not None and (problem := spec.check_limits(args, resource)):
        return verdict(StepVerdict.REFUSE, problem, spec.risk)
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
