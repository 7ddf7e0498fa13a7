"""The model reasoning backend: any LangChain chat model behind the `Reasoner` interface.

`reasoner_for(setting, inventory)` turns a Context's `reasoning` string into a
Reasoner: ``runbook`` (rule-based), ``auto`` (the model from the environment if one is
configured, else the runbook), ``model`` (the environment's model, required), or a
``provider:model`` spec. Building a model reads API keys at that moment, never at import.
"""

from __future__ import annotations

from opsgraph.agents.llm.reasoner import ModelReasoner
from opsgraph.agents.models import ModelConfigError, build_chat_model, model_spec_from_env
from opsgraph.agents.reasoning import Reasoner
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.settings import load_settings
from opsgraph.tools.inventory import Inventory

__all__ = ["ModelReasoner", "model_reasoner_from_env", "reasoner_for"]


def model_reasoner_from_env(
    inventory: Inventory | None = None,
    *,
    spec: str | None = None,
    timeout_s: float | None = None,
    max_retries: int = 1,
    token_budget: int = 6000,
    max_tool_steps: int = 6,
) -> ModelReasoner | None:
    """A ModelReasoner for `spec` (default: `OPSGRAPH_MODEL` / a Google key), or None if no model is configured.

    `timeout_s` bounds one model call; None: `OPSGRAPH_MODEL_TIMEOUT_S` (30 s).
    """
    spec = spec or model_spec_from_env()
    if spec is None:
        return None
    if timeout_s is None:
        timeout_s = load_settings().model_timeout_s
    model = build_chat_model(spec, timeout_s=timeout_s, max_retries=max_retries)
    # The whole diagnose/plan call may take a few calls' time: a slow (local) model gets a longer deadline.
    deadline_s = max(120.0, 4 * timeout_s)
    return ModelReasoner(
        model, inventory=inventory, token_budget=token_budget, max_tool_steps=max_tool_steps, deadline_s=deadline_s
    )


def reasoner_for(setting: str, inventory: Inventory | None = None, *, timeout_s: float | None = None) -> Reasoner:
    """The Reasoner a `reasoning` setting names (see the module docstring)."""
    if setting == "runbook":
        return RunbookReasoner()
    if setting in {"auto", "model"}:
        reasoner = model_reasoner_from_env(inventory, timeout_s=timeout_s)
        if reasoner is not None:
            return reasoner
        if setting == "model":
            raise ModelConfigError("reasoning 'model' needs OPSGRAPH_MODEL=provider:model or GOOGLE_API_KEY")
        return RunbookReasoner()
    if ":" in setting:
        built = model_reasoner_from_env(inventory, spec=setting, timeout_s=timeout_s)
        assert built is not None  # a spec was given
        return built
    raise ModelConfigError(f"unknown reasoning backend {setting!r}: use runbook, auto, model or provider:model")
