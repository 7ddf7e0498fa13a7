"""The model factory: which model the environment selects, and clear errors when it cannot be built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsgraph.agents.llm import ModelReasoner, reasoner_for
from opsgraph.agents.models import (
    DEFAULT_GEMINI,
    ModelConfigError,
    build_chat_model,
    model_name,
    model_spec_from_env,
    split_spec,
)
from opsgraph.agents.runbooks import RunbookReasoner


@pytest.mark.parametrize(
    ("env", "spec"),
    [
        ({}, None),
        ({"GOOGLE_API_KEY": "k"}, DEFAULT_GEMINI),
        ({"GEMINI_API_KEY": "k"}, DEFAULT_GEMINI),
        ({"OPSGRAPH_MODEL": "ollama:llama3", "GOOGLE_API_KEY": "k"}, "ollama:llama3"),
        ({"OPSGRAPH_MODEL": "runbook", "GOOGLE_API_KEY": "k"}, None),
        ({"OPSGRAPH_MODEL": "  "}, None),
    ],
)
def test_model_spec_from_env(env: dict[str, str], spec: str | None) -> None:
    assert model_spec_from_env(env) == spec


def test_split_spec() -> None:
    assert split_spec("ollama:llama3:8b") == ("ollama", "llama3:8b")
    with pytest.raises(ModelConfigError, match="provider:model"):
        split_spec("gemini")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchprovider:model", "Unsupported provider"),
        # The integration is not installed here: the extra that installs it is named.
        ("ollama:llama3", r"pip install 'opsgraph\[ollama\]'"),
        ("anthropic:claude-haiku-4-5", r"pip install 'opsgraph\[anthropic\]'"),
    ],
)
def test_unbuildable_models_raise_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        build_chat_model(spec, env={})


def test_gemini_builds_with_timeout_and_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-real")
    chat = build_chat_model(DEFAULT_GEMINI, timeout_s=5, max_retries=1)
    assert model_name(chat) == "gemini-2.5-flash"
    assert getattr(chat, "timeout", None) == 5 and getattr(chat, "max_retries", None) == 1


def test_reasoner_for_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPSGRAPH_MODEL", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert isinstance(reasoner_for("runbook"), RunbookReasoner)
    assert isinstance(reasoner_for("auto"), RunbookReasoner)  # no model configured: rules
    with pytest.raises(ModelConfigError, match="OPSGRAPH_MODEL"):
        reasoner_for("model")
    with pytest.raises(ModelConfigError, match="unknown reasoning backend"):
        reasoner_for("magic")
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key-not-real")
    reasoner = reasoner_for("auto")
    assert isinstance(reasoner, ModelReasoner) and reasoner.name == "gemini-2.5-flash"


def test_the_scripted_emulator_replays_a_json_file_of_replies(tmp_path: Path) -> None:
    from opsgraph.agents.models import ModelConfigError, build_chat_model

    script = tmp_path / "replies.json"
    script.write_text(
        json.dumps([{"tool_calls": [{"name": "redis_info", "args": {"resource": "cache"}}]}, {"text": "ok"}])
    )
    model = build_chat_model(f"scripted:{script}")
    first = model.invoke("hello")
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("redis_info", {"resource": "cache"})]
    assert model.invoke("again").content == "ok"
    script.write_text('[{"txet": "typo"}]')
    with pytest.raises(ModelConfigError, match="not a model recording or list of replies"):
        build_chat_model(f"scripted:{script}")
    with pytest.raises(ModelConfigError, match=r"no-such\.json"):
        build_chat_model(f"scripted:{tmp_path / 'no-such.json'}")
