"""Run-time configuration of the incident graph, passed per run (never checkpointed).

Every field the operator sets defaults to `opsgraph.settings` (the environment over
`.env`), so that the CLI, tests and the LangGraph server (which builds the context from
JSON) all configure the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, cast

from opsgraph.graph.ledger import Ledger
from opsgraph.graph.policy import ApprovalMode
from opsgraph.settings import load_settings
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.spec import ToolContext

if TYPE_CHECKING:  # only for annotations: the `reasoner` field stays `object` so that LangGraph can
    # render this dataclass as the JSON context schema Studio shows.
    from opsgraph.agents.reasoning import Reasoner


@dataclass(kw_only=True)
class Context:
    inventory_path: str = field(
        default_factory=lambda: load_settings().inventory,
        metadata={"description": "Inventory file listing the resources in scope (env OPSGRAPH_INVENTORY)."},
    )
    state_dir: str = field(
        default_factory=lambda: load_settings().home,
        metadata={"description": "Folder for the ledger, checkpoints and local servers (env OPSGRAPH_HOME)."},
    )
    approval: str = field(
        default_factory=lambda: load_settings().approval,
        metadata={"description": "Which steps wait for a human: risky, all or none (env OPSGRAPH_APPROVAL)."},
    )
    reasoning: str = field(
        default_factory=lambda: load_settings().reasoning,
        metadata={
            "description": "Reasoning backend: auto (the model of OPSGRAPH_MODEL / GOOGLE_API_KEY if set, else the "
            "runbook), runbook (embedded, rule-based), model, or a provider:model spec (env OPSGRAPH_REASONING)."
        },
    )
    diagnostician_reasoning: str | None = field(
        default_factory=lambda: load_settings().diagnostician_reasoning,
        metadata={
            "description": "Per-node override of `reasoning` for the diagnostician "
            "(env OPSGRAPH_DIAGNOSTICIAN_REASONING)."
        },
    )
    planner_reasoning: str | None = field(
        default_factory=lambda: load_settings().planner_reasoning,
        metadata={"description": "Per-node override of `reasoning` for the planner (env OPSGRAPH_PLANNER_REASONING)."},
    )
    model_timeout_s: float = field(
        default_factory=lambda: load_settings().model_timeout_s,
        metadata={"description": "Upper bound on one model call, in seconds (env OPSGRAPH_MODEL_TIMEOUT_S)."},
    )
    verify_deadline_s: float = field(
        default=30.0, metadata={"description": "How long the verifier waits for recovery before giving up."}
    )
    settle_s: float = field(
        default=1.0, metadata={"description": "How long the resource must stay healthy to count as recovered."}
    )
    probe_interval_s: float = field(default=0.2, metadata={"description": "Pause between verifier probes."})
    max_retries: int = field(default=2, metadata={"description": "Re-plans after a failed verification."})
    tool_timeout_s: float = field(default=20.0, metadata={"description": "Upper bound on one tool call."})
    resource_action_cap: int = field(
        default_factory=lambda: load_settings().resource_action_cap,
        metadata={"description": "Disruptive actions per resource per window (OPSGRAPH_RESOURCE_ACTION_CAP)."},
    )
    resource_action_window_s: float = field(
        default_factory=lambda: load_settings().resource_action_window_s,
        metadata={"description": "Window of resource_action_cap in seconds (OPSGRAPH_RESOURCE_ACTION_WINDOW_S)."},
    )
    global_action_cap: int = field(
        default_factory=lambda: load_settings().global_action_cap,
        metadata={"description": "Mutating actions per hour, all resources together (OPSGRAPH_GLOBAL_ACTION_CAP)."},
    )
    # Typed loosely so the LangGraph server can still render this schema as JSON.
    reasoner: object | None = field(
        default=None, metadata={"description": "A Reasoner object overriding `reasoning` (embedding, tests)."}
    )

    @property
    def approval_mode(self) -> ApprovalMode:
        try:
            return ApprovalMode(self.approval)
        except ValueError:
            choices = ", ".join(mode.value for mode in ApprovalMode)
            raise ValueError(f"approval must be one of {choices} (got {self.approval!r})") from None

    def reasoning_backend(self, node: str) -> Reasoner:
        """The Reasoner given directly, else the one this node's setting names (built when asked, never at import)."""
        # Imported here for speed, not to dodge a cycle: the model path pulls in LangChain's
        # integrations (~1.6 s), which a runbook-only run or a CLI command never needs.
        from opsgraph.agents.llm import reasoner_for

        if self.reasoner is not None:
            return cast("Reasoner", self.reasoner)
        override = {"diagnostician": self.diagnostician_reasoning, "planner": self.planner_reasoning}.get(node)
        return reasoner_for(override or self.reasoning, self.inventory, timeout_s=self.model_timeout_s)

    @cached_property
    def inventory(self) -> Inventory:
        return load_inventory(Path(self.inventory_path))

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(Path(self.state_dir) / "ledger.sqlite")

    @property
    def tools(self) -> ToolContext:
        return ToolContext(inventory=self.inventory, state_dir=Path(self.state_dir))


def context_of(context: Context | None) -> Context:
    """Runs started without a context (e.g. from Studio) get the settings' defaults (environment, `.env`)."""
    return context if context is not None else Context()
