"""The one guard every tool call passes: the hard limits, whoever calls and whatever approved it.

A call is admitted only when its tool is in the catalogue, its arguments validate
against the tool's model, its resource is in the inventory (and in the caller's scope,
e.g. the incident's resource), the tool fits the resource's kind and environment, the
tool is not in the resource's `deny_tools`, its risk is within the resource's `max_risk`,
and the tool's own resource limits hold. The runner applies it to every call (graph
executor, MCP, evidence reads); the graph's policy engine applies it first and then
decides only whether a human must approve. No approval lifts any of these limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.inventory import Inventory, Resource
from opsgraph.tools.spec import ToolArgs, ToolSpec


@dataclass(frozen=True)
class Admission:
    """What the guard found: the validated call, or why it may not run (`refusal`)."""

    spec: ToolSpec[Any] | None
    args: ToolArgs | None
    resource: Resource | None
    refusal: str | None

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def _refused(reason: str, spec: ToolSpec[Any] | None = None) -> Admission:
    return Admission(spec=spec, args=None, resource=None, refusal=reason)


def admit(tool: str, raw_args: dict[str, Any], inventory: Inventory, scope: set[str] | None = None) -> Admission:
    """Check one call against every hard limit; `scope` (default: the whole inventory) bounds its resources."""
    spec = CATALOGUE.get(tool)
    if spec is None:
        return _refused(f"tool {tool!r} is not in the catalogue")
    try:
        args = spec.args_model.model_validate(raw_args)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in error.errors())
        return _refused(f"invalid arguments for {tool}: {problems}", spec)
    if not inventory.has(args.resource):
        return _refused(f"resource {args.resource!r} is not in the inventory", spec)
    if scope is not None and args.resource not in scope:
        return _refused(f"resource {args.resource!r} is outside this incident's scope", spec)
    resource = inventory.get(args.resource)
    if (misfit := spec.fits(resource)) is not None:
        return _refused(misfit, spec)
    if tool in resource.policy.deny_tools:
        return _refused(f"{tool} is denied on {resource.name} by its policy (deny_tools)", spec)
    if spec.risk.exceeds(resource.policy.max_risk):
        return _refused(f"{tool} is {spec.risk}; {resource.name} allows at most {resource.policy.max_risk}", spec)
    if spec.check_limits is not None and (problem := spec.check_limits(args, resource)):
        return _refused(problem, spec)
    return Admission(spec=spec, args=args, resource=resource, refusal=None)
