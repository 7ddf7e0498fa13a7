"""What a tool is: a typed function with an argument model, a target kind and a risk class.

Kept apart from the catalogue table so that tool modules can import these types
without importing each other. A tool is declared once, where its function is written:
`@declare(...)` turns the function into its `ToolSpec`, reading the name, the argument
model and the description from the function itself, so that no second copy can drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast, get_type_hints

from pydantic import BaseModel, ConfigDict, Field

from opsgraph.tools.environments import Lifecycle, lifecycle_for
from opsgraph.tools.errors import ToolError as ToolError  # part of what a tool is: its expected failure
from opsgraph.tools.inventory import Environment, Inventory, Resource, ResourceKind
from opsgraph.tools.risk import Risk


class ToolArgs(BaseModel):
    """Every tool names the inventory resource it acts on; unknown arguments are rejected."""

    model_config = ConfigDict(extra="forbid")
    resource: str = Field(description="Name of the resource in the inventory")


@dataclass(frozen=True)
class ToolContext:
    """What a tool may reach: the inventory and the environments it describes."""

    inventory: Inventory
    state_dir: Path

    def resource(self, name: str) -> Resource:
        return self.inventory.get(name)

    def lifecycle(self, resource: Resource) -> Lifecycle:
        return lifecycle_for(resource, self.inventory, self.state_dir)


def above_ceiling(name: str, value: int, ceiling: int, unit: str = "") -> str | None:
    """The hard-limit refusal of a value above a resource's policy ceiling (a `check_limits` answer), or None."""
    if value <= ceiling:
        return None
    return f"{name} {value} is above this resource's policy ceiling of {ceiling}{unit}"


def outside_allowlist(name: str, value: str, allowed: list[str], field: str) -> str | None:
    """The hard-limit refusal of a value missing from a resource's policy list (a `check_limits` answer), or None.

    An empty list allows nothing: a machine type or a tier is only ever one a human listed.
    """
    if value in allowed:
        return None
    listed = ", ".join(allowed) if allowed else "empty: none is allowed"
    return f"{name} {value} is not in this resource's policy.{field} ({listed})"


ArgsT = TypeVar("ArgsT", bound=ToolArgs)


@dataclass(frozen=True)
class ToolSpec(Generic[ArgsT]):
    """One catalogue entry, as the policy, the guard, the runner, the MCP server and the reasoners read it."""

    name: str
    description: str
    args_model: type[ArgsT]
    target_kind: ResourceKind | None  # None: any kind (e.g. process tools)
    risk: Risk
    run: Callable[[ArgsT, ToolContext], dict[str, Any]]
    idempotent: bool
    undo: str | None = None
    # Resource-specific limits (e.g. a memory ceiling) that hold even with approval.
    check_limits: Callable[[ArgsT, Resource], str | None] | None = None
    # Only resources in these environments (e.g. process tools act on processes on this host).
    environments: frozenset[Environment] | None = None
    # Data-fingerprint facts (see data_safety) this tool changes on purpose, e.g. redis_flush
    # the key count; any other change after a disruptive step is a data-safety failure.
    may_change: frozenset[str] = frozenset()
    # Non-idempotent tools: what to note about the target before the call (e.g. the server's
    # identity), so that a call left in doubt by a crash is settled by looking, not guessed.
    observe: Callable[[Resource, ToolContext], str | None] | None = None

    def record(self) -> dict[str, Any]:
        """The tool as data (`tools --json`, the API's catalogue): null `target_kind` / `environments` mean any."""
        return {
            "name": self.name,
            "target_kind": self.target_kind,
            "environments": sorted(self.environments) if self.environments is not None else None,
            "risk": self.risk,
            "description": self.description,
            "undo": self.undo,
            "idempotent": self.idempotent,
            "arguments": self.args_model.model_json_schema(),
        }

    @property
    def checks_data(self) -> bool:
        """Disruptive and destructive steps are bracketed by data fingerprints."""
        return self.risk in (Risk.DISRUPTIVE, Risk.DESTRUCTIVE)

    def fits(self, resource: Resource) -> str | None:
        """Why this tool cannot act on `resource`, or None when it can."""
        if self.target_kind is not None and resource.kind is not self.target_kind:
            return f"{self.name} acts on {self.target_kind}, {resource.name} is {resource.kind}"
        if self.environments is not None and resource.environment not in self.environments:
            return f"{self.name} acts on {self.where} resources, {resource.name} runs in {resource.environment}"
        return None

    @property
    def where(self) -> str:
        """The environments this tool acts in, for people: "local or external"."""
        return " or ".join(sorted(self.environments or ()))

    @property
    def mutating(self) -> bool:
        return self.risk is not Risk.READ


def _first_paragraph(function: Callable[..., Any]) -> str:
    """What the tool does, for the model, the MCP client and the README: the docstring's first paragraph."""
    if not function.__doc__:
        raise TypeError(f"tool {function.__name__} needs a docstring: its first paragraph is its description")
    return " ".join(inspect.cleandoc(function.__doc__).split("\n\n")[0].split())


def _args_model(function: Callable[..., Any]) -> type[ToolArgs]:
    """The argument model: the annotation of the function's first parameter, a ToolArgs subclass."""
    first = next(iter(inspect.signature(function).parameters))
    model = get_type_hints(function)[first]
    if not (isinstance(model, type) and issubclass(model, ToolArgs)):
        raise TypeError(f"tool {function.__name__}: its first parameter must be annotated with a ToolArgs model")
    return model


def declare(
    *,
    risk: Risk,
    target: ResourceKind | None,
    idempotent: bool,
    undo: str | None = None,
    check_limits: Callable[[ArgsT, Resource], str | None] | None = None,
    environments: frozenset[Environment] | None = None,
    may_change: frozenset[str] = frozenset(),
    observe: Callable[[Resource, ToolContext], str | None] | None = None,
) -> Callable[[Callable[[ArgsT, ToolContext], dict[str, Any]]], ToolSpec[ArgsT]]:
    """Declare the decorated function a tool: it becomes its ToolSpec (`spec.run` is the function).

    `target=None` means any kind of resource (the process tools). The name is the
    function's name, the argument model its first parameter's annotation, the description
    its docstring's first paragraph; later paragraphs are for people reading the code.
    """

    def as_spec(function: Callable[[ArgsT, ToolContext], dict[str, Any]]) -> ToolSpec[ArgsT]:
        if not idempotent and observe is None:
            raise TypeError(
                f"tool {function.__name__} is not idempotent: declare `observe`, so that a call left in doubt "
                "by a crash can be settled by looking at the target"
            )
        return ToolSpec(
            name=function.__name__,
            description=_first_paragraph(function),
            args_model=cast(type[ArgsT], _args_model(function)),  # the function's own parameter type
            target_kind=target,
            risk=risk,
            run=function,
            idempotent=idempotent,
            undo=undo,
            check_limits=check_limits,
            environments=environments,
            may_change=may_change,
            observe=observe,
        )

    return as_spec
