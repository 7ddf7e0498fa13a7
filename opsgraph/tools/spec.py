"""What a tool is: a typed function with an argument model, a target kind and a risk class.

Kept apart from the catalogue table so that tool modules can import these types
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

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


ArgsT = TypeVar("ArgsT", bound=ToolArgs)


@dataclass(frozen=True)
class ToolSpec(Generic[ArgsT]):
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
