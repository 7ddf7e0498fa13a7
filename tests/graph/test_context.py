"""Which reasoning backend each node gets, from the Context and the settings (environment, `.env`)."""

from pathlib import Path

import pytest
import yaml
from support import redis_resource

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.models import ModelConfigError
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.graph.context import Context


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing configured: neither in the environment nor in a `.env` (a developer's own stays out)."""
    for variable in ("OPSGRAPH_MODEL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "OPSGRAPH_REASONING"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OPSGRAPH_ENV_FILE", str(tmp_path / "no.env"))


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "opsgraph.yaml"
    path.write_text(yaml.safe_dump({"resources": [redis_resource()]}))
    return str(path)


def test_auto_without_a_model_is_the_runbook(no_model: None, inventory: str) -> None:
    context = Context(inventory_path=inventory)
    assert context.reasoning == "auto"
    assert isinstance(context.reasoning_backend("diagnostician"), RunbookReasoner)


def test_per_node_overrides(no_model: None, inventory: str) -> None:
    context = Context(inventory_path=inventory, reasoning="runbook", planner_reasoning="model")
    assert isinstance(context.reasoning_backend("diagnostician"), RunbookReasoner)
    with pytest.raises(ModelConfigError, match="OPSGRAPH_MODEL"):
        context.reasoning_backend("planner")


def test_a_google_key_selects_gemini_without_calling_it(
    no_model: None, inventory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key-not-real")
    backend = Context(inventory_path=inventory).reasoning_backend("planner")
    assert isinstance(backend, ModelReasoner)
    assert backend.name == "gemini-2.5-flash"


def test_the_model_call_bound_comes_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, inventory: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPSGRAPH_MODEL_TIMEOUT_S", "90")
    context = Context(inventory_path=inventory, state_dir=str(tmp_path), reasoning="scripted:unused.json")
    assert context.model_timeout_s == 90.0
    monkeypatch.setenv("OPSGRAPH_MODEL_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="model_timeout_s"):
        Context(inventory_path=inventory, state_dir=str(tmp_path))
