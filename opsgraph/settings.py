"""OpsGraph's settings: one model read from the process environment and a `.env` file.

Every process reads its configuration here — the CLI (its option defaults), the graph's
Context (so also the LangGraph server and Studio) and the model factory — so a value set
once in `.env` reaches all of them. The environment wins over `.env`; the file is
`.env` in the current directory, or the one `OPSGRAPH_ENV_FILE` names. Settings are
read when asked (`load_settings()`), never at import, so tests and long-running
processes see the environment of the moment.

This module imports nothing else from OpsGraph: every layer (entry points, graph,
agents) may read it.
"""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE_VARIABLE = "OPSGRAPH_ENV_FILE"


class Settings(BaseSettings):
    """Every setting OpsGraph reads; `.env.example` documents each one under its variable name."""

    model_config = SettingsConfigDict(
        env_prefix="OPSGRAPH_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `KEY=` in .env (or compose's `${KEY:-}`) means unset
        extra="ignore",  # .env also holds docker-compose's secrets, which are not ours
    )

    inventory: str = Field(default="opsgraph.yaml", description="Inventory file listing the resources in scope.")
    home: str = Field(default=".opsgraph", description="Folder for the ledger, checkpoints and local servers.")
    approval: str = Field(default="risky", description="Which steps wait for a human: risky, all or none.")
    reasoning: str = Field(default="auto", description="Reasoning backend: auto, runbook, model or provider:model.")
    diagnostician_reasoning: str | None = Field(default=None, description="The diagnostician's own `reasoning`.")
    planner_reasoning: str | None = Field(default=None, description="The planner's own `reasoning`.")
    model: str | None = Field(default=None, description="The chat model of auto/model, as provider:model.")
    model_timeout_s: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Upper bound on one model call, in seconds (a slow local model needs more).",
    )
    langgraph_url: str | None = Field(
        default=None,
        description="A LangGraph server (Studio, `langgraph dev`) whose paused incidents approve/reject answer.",
    )
    mcp_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of every `opsgraph mcp --transport http` request; required above read access.",
    )
    approval_ttl_s: float = Field(
        default=3600.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds an approval request stands; a later approval is refused and the request asked again.",
    )
    roles: str | None = Field(
        default=None,
        description="Who may approve what, e.g. alice=admin,bob=operator,carol=viewer; unset: everyone may.",
    )
    chat_users: SecretStr | None = Field(
        default=None,
        description="Who may log in to the chat, as name:hash,... (`opsgraph chat hash-password`); needs "
        "CHAINLIT_AUTH_SECRET.",
    )
    chat_database_url: SecretStr | None = Field(
        default=None,
        description="The chat's history database (postgresql://...); unset: chat.sqlite in the state folder.",
    )
    # `opsgraph serve` (opsgraph/serve): its API's callers, and where it tells people about incidents.
    api_tokens: SecretStr | None = Field(
        default=None,
        description="Who may call `opsgraph serve`'s API, as name:scope:token,... (scope read, ingest or approve; "
        "tokens of 16+ characters); the name is the caller's identity, judged by OPSGRAPH_ROLES.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where people reach `opsgraph serve` (https://opsgraph.example.com); notifications link there.",
    )
    chat_url: str | None = Field(
        default=None, description="Where people reach the chat; notifications that wait for a human link there."
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="A Slack (or compatible) incoming webhook that hears of incidents. Never logged."
    )
    pagerduty_routing_key: SecretStr | None = Field(
        default=None,
        description="A PagerDuty Events API v2 routing key: incidents that need a human trigger a page. Never logged.",
    )
    pagerduty_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="The PagerDuty Events API v2 endpoint."
    )
    # Caps on what OpsGraph does unattended (see opsgraph/graph/caps.py): counted from the ledger's action rows.
    resource_action_cap: int = Field(
        default=3, ge=0, description="Disruptive or destructive actions per resource per window, then it is held."
    )
    resource_action_window_s: float = Field(
        default=900.0, gt=0, allow_inf_nan=False, description="The window of resource_action_cap, in seconds."
    )
    global_action_cap: int = Field(default=20, ge=0, description="Mutating actions per hour, all resources together.")
    # Provider settings under the names their SDKs use; passed to the model explicitly,
    # since a key that is only in .env never reaches os.environ.
    google_api_key: SecretStr | None = Field(default=None, validation_alias="GOOGLE_API_KEY")
    gemini_api_key: SecretStr | None = Field(default=None, validation_alias="GEMINI_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    ollama_base_url: str | None = Field(default=None, validation_alias=AliasChoices("OLLAMA_BASE_URL", "OLLAMA_HOST"))

    def model_environment(self) -> dict[str, str]:
        """The model settings under their variable names, for the model factory (which stays a mapping reader).

        Holds the API keys in clear: hand it to the factory only, never to a log.
        """
        values = {
            "OPSGRAPH_MODEL": self.model,
            "GOOGLE_API_KEY": _reveal(self.google_api_key),
            "GEMINI_API_KEY": _reveal(self.gemini_api_key),
            "OPENAI_API_KEY": _reveal(self.openai_api_key),
            "OPENAI_BASE_URL": self.openai_base_url,
            "OLLAMA_BASE_URL": self.ollama_base_url,
        }
        return {name: value for name, value in values.items() if value is not None}


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def load_settings() -> Settings:
    """The settings now: the environment over `.env` (or the file `OPSGRAPH_ENV_FILE` names)."""
    return Settings(_env_file=os.environ.get(ENV_FILE_VARIABLE) or ".env")
