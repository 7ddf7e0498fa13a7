"""`ChatOpenAI` for OpenAI-compatible servers (``openai:`` with ``OPENAI_BASE_URL``) that read the spec strictly.

langchain-openai sends an assistant message that called tools with ``"content": null``, as
OpenAI's API allows. llama-cpp-python's server validates that content as a string and
answers HTTP 500, so a conversation could not go on after the model's first tool call (or
after a structured answer sent back for repair). An empty string means the same to every
server; this class sends that instead. It also sends the reply-length cap as ``max_tokens``,
the field every compatible server reads (langchain-openai renames it ``max_completion_tokens``,
which llama-cpp-python's server ignores, so a small model's runaway reply ran to the request
timeout). Importing it needs the ``opsgraph[openai]`` extra.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI


class CompatibleChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose assistant messages always carry string content, and whose length cap is `max_tokens`."""

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload
