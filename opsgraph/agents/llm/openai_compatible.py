"""`ChatOpenAI` for OpenAI-compatible servers (``openai:`` with ``OPENAI_BASE_URL``) that read the spec strictly.

langchain-openai sends an assistant message that called tools with ``"content": null``, as
OpenAI's API allows. llama-cpp-python's server validates that content as a string and
answers HTTP 500, so a conversation could not go on after the model's first tool call (or
after a structured answer sent back for repair). An empty string means the same to every
server; this class sends that instead and changes nothing else. Importing it needs the
``opsgraph[openai]`` extra.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI


class CompatibleChatOpenAI(ChatOpenAI):
    """ChatOpenAI whose assistant messages always carry string content."""

    def _get_request_payload(
        self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload
