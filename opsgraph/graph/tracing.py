"""LangSmith tracing: on when LANGSMITH_API_KEY is set, and then nothing leaves otherwise.

LangChain decides from environment variables; without a key we pin tracing off so
that no run (and none of the redacted prompts) is ever sent anywhere.
"""

from __future__ import annotations

import os


def configure_tracing() -> bool:
    """Turn LangSmith tracing on only with an API key; returns whether it is on."""
    if os.environ.get("LANGSMITH_API_KEY"):
        os.environ.setdefault("LANGSMITH_TRACING", "true")
        return os.environ["LANGSMITH_TRACING"].lower() == "true"
    for variable in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        os.environ[variable] = "false"
    return False
