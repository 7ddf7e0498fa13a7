"""One settings model: `.env` alone configures the CLI, the Context and the model; the environment wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices
from support import redis_resource
from typer.testing import CliRunner

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.models import model_spec_from_env
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.cli.app import app
from opsgraph.graph.context import Context
from opsgraph.settings import ENV_FILE_VARIABLE, Settings, load_settings

ROOT = Path(__file__).parents[1]
NOT_A_KEY = "test-key-not-real"


def variable_names() -> dict[str, list[str]]:
    """Each Settings field's environment variables (the first is the documented one)."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names[name] = [f"{prefix}{name}".upper()]
        elif isinstance(alias, AliasChoices):
            names[name] = [str(choice) for choice in alias.choices]
        else:
            names[name] = [str(alias)]
    return names


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with nothing of ours in the environment: only what a test writes to `.env` counts."""
    for variables in variable_names().values():
        for variable in variables:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opsgraph.yaml").write_text(yaml.safe_dump({"resources": [redis_resource()]}))
    return tmp_path


def test_a_model_set_only_in_dotenv_is_selected(folder: Path) -> None:
    # A spec other than the Google-key default, and the key itself only in the file: both must reach the model.
    (folder / ".env").write_text(f"OPSGRAPH_MODEL=google_genai:gemini-2.5-flash-lite\nGOOGLE_API_KEY={NOT_A_KEY}\n")
    backend = Context().reasoning_backend("planner")
    assert isinstance(backend, ModelReasoner)
    assert backend.name == "gemini-2.5-flash-lite"


def test_the_environment_wins_over_dotenv(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / ".env").write_text("OPSGRAPH_MODEL=google_genai:gemini-2.5-flash-lite\nOPSGRAPH_HOME=from-file\n")
    monkeypatch.setenv("OPSGRAPH_MODEL", "runbook")
    monkeypatch.setenv("OPSGRAPH_HOME", "from-environment")
    assert model_spec_from_env() is None
    context = Context()
    assert context.state_dir == "from-environment"
    assert isinstance(context.reasoning_backend("diagnostician"), RunbookReasoner)


def test_env_file_variable_points_at_another_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / ".env").write_text("OPSGRAPH_APPROVAL=none\n")
    elsewhere = folder / "ops.env"
    elsewhere.write_text("OPSGRAPH_APPROVAL=all\nOPSGRAPH_PLANNER_REASONING=runbook\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(elsewhere))
    context = Context()
    assert (context.approval, context.planner_reasoning) == ("all", "runbook")


def test_the_cli_takes_its_option_defaults_from_dotenv(folder: Path) -> None:
    (folder / ".env").write_text("OPSGRAPH_INVENTORY=from-dotenv.yaml\n")
    result = CliRunner().invoke(app, ["scan"])
    assert result.exit_code == 2
    assert "from-dotenv.yaml" in result.output
    flagged = CliRunner().invoke(app, ["scan", "--inventory", "flag.yaml"])  # a flag still wins
    assert "flag.yaml" in flagged.output and "from-dotenv.yaml" not in flagged.output


def test_keys_never_show_in_the_settings_repr(folder: Path) -> None:
    (folder / ".env").write_text(f"GEMINI_API_KEY={NOT_A_KEY}\n")
    settings = load_settings()
    assert NOT_A_KEY not in repr(settings) and NOT_A_KEY not in str(settings)
    assert model_spec_from_env() == "google_genai:gemini-2.5-flash"


def documented_keys() -> set[str]:
    """The keys `.env.example` sets or shows commented out (`# KEY=value`)."""
    keys = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, sep, _ = line.lstrip("# ").partition("=")
        if sep and key.isupper() and key.replace("_", "").isalnum():
            keys.add(key)
    return keys


def compose_opsgraph_environment() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment: dict[str, str] = compose["services"]["opsgraph"]["environment"]
    return environment


def test_env_example_lists_exactly_the_settings() -> None:
    settings = {names[0] for names in variable_names().values()}
    keys = documented_keys()
    assert settings <= keys, f"undocumented settings: {sorted(settings - keys)}"
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for key in keys - settings:  # the rest must be something docker compose reads from .env
        assert f"${{{key}:" in compose_text, f".env.example names {key}, which no settings field or compose reads"


def test_compose_hands_every_setting_to_opsgraph() -> None:
    settings = {names[0] for names in variable_names().values()}
    environment = compose_opsgraph_environment()
    assert settings <= set(environment), f"not passed to the opsgraph service: {sorted(settings - set(environment))}"
    assert (environment["OPSGRAPH_INVENTORY"], environment["OPSGRAPH_HOME"]) == (
        "/app/deploy/opsgraph.compose.yaml",
        "/data",
    )


def test_the_suite_never_reads_a_developers_env_file() -> None:
    """The `suite_settings` plugin points the settings at a file that does not exist."""
    path = os.environ["OPSGRAPH_ENV_FILE"]
    assert path.endswith("no-such.env") and not os.path.exists(path)
