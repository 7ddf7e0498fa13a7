"""Which chat model reasons, and how it is built: `OPSGRAPH_MODEL=provider:model`.

Nothing here runs at import. `model_spec_from_env` answers "is a model configured?"
(None means: use the runbook backend); `build_chat_model` turns a spec into a LangChain
chat model with a request timeout and a bounded number of retries, for any provider
`init_chat_model` knows (``google_genai:gemini-2.5-flash``, ``ollama:llama3``,
``openai:gpt-4o-mini`` — an OpenAI-compatible endpoint through ``OPENAI_BASE_URL``), and
the emulator ``scripted:PATH`` (a recording or list of replies replayed from a JSON file, for
offline demos, tests and evals). Both read the model and provider settings from
`opsgraph.settings` (the environment over `.env`) unless given a mapping.

Each provider's LangChain integration is an optional extra of OpsGraph
(``pip install 'opsgraph[openai]'``, ``[ollama]``, ``[anthropic]``); a missing one is named
in the error. With ``OPSGRAPH_MODEL_RECORD=PATH`` in the process environment the model's
every call is recorded to PATH (`opsgraph.agents.llm.recording`), for replay by ``scripted:PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsgraph.settings import load_settings

if TYPE_CHECKING:  # LangChain takes most of a second to import: only building a model pays for it
    from langchain_core.language_models import BaseChatModel

DEFAULT_GEMINI = "google_genai:gemini-2.5-flash"
SCRIPTED = "scripted"  # the emulator: `scripted:PATH` replays a JSON file of replies (see `scripted_model`)
_GEMINI_KEYS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
# The optional extra that installs each provider's integration (Gemini's is a dependency).
EXTRAS = {"openai": "openai", "ollama": "ollama", "anthropic": "anthropic"}
RECORD_VARIABLE = "OPSGRAPH_MODEL_RECORD"
# Longest reply asked of an OpenAI-compatible server: a structured answer takes a few hundred tokens.
COMPATIBLE_MAX_REPLY_TOKENS = 1024


class ModelConfigError(ValueError):
    """The configured model cannot be built: bad spec, missing provider package or credentials."""


def model_spec_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """`OPSGRAPH_MODEL`, else Gemini when a Google key is set, else None (the runbook backend)."""
    env = load_settings().model_environment() if env is None else env
    spec = env.get("OPSGRAPH_MODEL", "").strip()
    if spec:
        return None if spec in {"none", "runbook"} else spec
    if any(env.get(key) for key in _GEMINI_KEYS):
        return DEFAULT_GEMINI
    return None


def split_spec(spec: str) -> tuple[str, str]:
    """``provider:model`` → (provider, model); the model part may itself contain colons (``ollama:llama3:8b``)."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise ModelConfigError(f"model spec {spec!r} must look like provider:model, e.g. {DEFAULT_GEMINI}")
    return provider.strip(), model.strip()


def _provider_kwargs(provider: str, timeout_s: float, max_retries: int, env: Mapping[str, str]) -> dict[str, Any]:
    """Timeout, retries, endpoint and key in the spelling each provider's chat class accepts.

    The key is passed explicitly because one set only in `.env` is not in os.environ,
    where the provider classes would otherwise look.
    """
    if provider == "ollama":
        kwargs: dict[str, Any] = {"client_kwargs": {"timeout": timeout_s}}
        if base_url := env.get("OLLAMA_BASE_URL"):
            kwargs["base_url"] = base_url
        return kwargs
    kwargs = {"timeout": timeout_s, "max_retries": max_retries}
    if provider == "openai":
        if base_url := env.get("OPENAI_BASE_URL"):
            kwargs["base_url"] = base_url
            # A compatible server runs whatever model it was given; a small one can ramble until the timeout.
            kwargs["max_tokens"] = COMPATIBLE_MAX_REPLY_TOKENS
        if key := env.get("OPENAI_API_KEY"):
            kwargs["api_key"] = key
    if provider == "google_genai" and (key := env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY")):
        kwargs["api_key"] = key
    return kwargs


def build_chat_model(
    spec: str, timeout_s: float = 30.0, max_retries: int = 1, env: Mapping[str, str] | None = None
) -> BaseChatModel:
    """A chat model for `spec`, bounded in time (recording if asked); `ModelConfigError` says what is missing."""
    if env is None:
        env = load_settings().model_environment()
        if record := os.environ.get(RECORD_VARIABLE):
            env = {**env, RECORD_VARIABLE: record}
    provider, model = split_spec(spec)
    chat = scripted_model(model) if provider == SCRIPTED else _provider_model(spec, timeout_s, max_retries, env)
    if record_to := env.get(RECORD_VARIABLE):
        from opsgraph.agents.llm.recording import recorder_for

        recorder = recorder_for(record_to, model_name(chat), "emulator" if provider == SCRIPTED else "model")
        chat.callbacks = [*(chat.callbacks if isinstance(chat.callbacks, list) else []), recorder]
    return chat


def _provider_model(spec: str, timeout_s: float, max_retries: int, env: Mapping[str, str]) -> BaseChatModel:
    from langchain.chat_models import init_chat_model

    provider, model = split_spec(spec)
    kwargs = _provider_kwargs(provider, timeout_s, max_retries, env)
    try:
        if provider == "openai" and "base_url" in kwargs:  # a compatible server, e.g. llama-cpp-python's
            from opsgraph.agents.llm.openai_compatible import CompatibleChatOpenAI

            chat: object = CompatibleChatOpenAI(model=model, **kwargs)
        else:
            chat = init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as error:
        extra = EXTRAS.get(provider)
        install = f"pip install 'opsgraph[{extra}]'" if extra else f"install LangChain's integration for {provider!r}"
        raise ModelConfigError(
            f"model {spec!r} needs LangChain's {provider!r} integration, which is not installed: {install} "
            f"(or, in a checkout, uv sync --extra {extra or provider}) — {error}"
        ) from error
    except ValueError as error:
        raise ModelConfigError(f"cannot build model {spec!r}: {error}") from error
    except Exception as error:  # provider constructors raise their own types (missing key, bad auth config)
        raise ModelConfigError(f"cannot build model {spec!r}: {type(error).__name__}: {error}") from error
    from langchain_core.language_models import BaseChatModel

    if not isinstance(chat, BaseChatModel):
        raise ModelConfigError(f"model {spec!r} did not build a chat model (got {type(chat).__name__})")
    return chat


def scripted_model(path: str) -> BaseChatModel:
    """The emulated model of ``scripted:PATH``: `ScriptedChatModel` replaying a recording or list of replies.

    For offline demos, evals and the tests of processes that build their own model (the chat
    server): it reasons about nothing. The file is a recording (`opsgraph.agents.llm.recording`)
    or a plain list of replies, each ``{"text": "..."}`` or
    ``{"tool_calls": [{"name": "...", "args": {...}}], "text": "..."}``.
    """
    from opsgraph.agents.llm.recording import RecordingError, replay

    try:
        return replay(path)
    except RecordingError as error:
        raise ModelConfigError(f"scripted model {path!r}: {error}") from error


def model_name(chat: BaseChatModel) -> str:
    """A short, stable name for reports: the model id when the class exposes one."""
    for attr in ("model", "model_name", "model_id"):
        value = getattr(chat, attr, None)
        if isinstance(value, str) and value:
            return value.removeprefix("models/")
    return type(chat).__name__
