"""What a fault scenario is: a name, the kind of resource it hits, and how to inject it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.spec import ToolContext


@dataclass(frozen=True)
class Scenario:
    name: str
    target_kind: ResourceKind
    description: str
    # Produce the real symptom on `resource`; returns what was done (for the operator and the evals).
    inject: Callable[[Resource, ToolContext], dict[str, Any]]
    # Take the fault away again (evals' teardown, demos); None where the fix itself ends it (a crash).
    reset: Callable[[Resource, ToolContext], dict[str, Any]] | None = None
