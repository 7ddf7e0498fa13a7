"""`ScriptedChatModel`: an emulator of a tool-calling chat model, for tests and offline demos.

It replays a script of replies (text, tool calls, structured answers) in order and
records every prompt it receives, so a test can assert on exactly what a model would
have seen. `bind_tools` returns the model itself — the script, not the bound tools,
decides what it "calls" — which is also what makes `with_structured_output` work.
It reasons about nothing: whatever the script says, it says. An exception in the script
is raised in place of that reply and the script goes on (a provider that refused one
request answers the next); past its end every call raises `ScriptExhausted`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

_ids = itertools.count(1)

# A scripted step: a reply, or an exception to raise in its place (e.g. TimeoutError()).
Reply = AIMessage | str | BaseException


class ScriptExhausted(RuntimeError):
    """The scripted model was called once more than its script has replies."""


class ScriptedChatModel(GenericFakeChatModel):
    """Replies from a script, in order; `prompts` holds every message list it was sent."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    model: str = "scripted"
    script: list[Any] = Field(default_factory=list)  # Reply items, kept as given (no validation)
    replied: int = 0  # script steps used so far

    @classmethod
    def of(cls, replies: Iterable[Reply], model: str = "scripted") -> ScriptedChatModel:
        return cls(messages=iter(()), script=list(replies), model=model)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(list(messages))
        reply = self._next_reply(run_manager)
        if isinstance(reply, BaseException):
            raise reply
        message = AIMessage(content=reply) if isinstance(reply, str) else reply
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _next_reply(self, run_manager: CallbackManagerForLLMRun | None) -> Reply:
        """The script's next step (a subclass may choose it by the call's run metadata).

        A model built with GenericFakeChatModel's own ``messages=iter([...])`` is served from that iterator.
        """
        if self.replied < len(self.script):
            reply: Reply = self.script[self.replied]
        else:
            try:
                reply = next(self.messages)
            except StopIteration:
                used = self.replied
                raise ScriptExhausted(f"the script of {self.model} has no reply left (all {used} used)") from None
        self.replied += 1
        return reply

    def prompt_text(self) -> str:
        """Everything sent to the model, as one string (for "this never reached a prompt" asserts)."""
        parts: list[str] = []
        for prompt in self.prompts:
            for message in prompt:
                parts.append(str(message.content))
                parts.extend(str(call["args"]) for call in getattr(message, "tool_calls", []))
        return "\n".join(parts)


def usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
    )


def tool_calls(*calls: tuple[str, dict[str, Any]], tokens: tuple[int, int] | None = None, text: str = "") -> AIMessage:
    """A reply asking for tool calls: `tool_calls(("redis_info", {"resource": "cache"}))`.

    `tokens` = (input, output) as the provider would report them; None reports nothing,
    and the reasoner then estimates usage from the characters it sent.
    """
    return AIMessage(
        content=text,
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"} for name, args in calls
        ],
        usage_metadata=usage(*tokens) if tokens else None,
    )


def answer(schema: type[BaseModel] | str, payload: dict[str, Any], tokens: tuple[int, int] | None = None) -> AIMessage:
    """A structured final answer, as `with_structured_output` receives it: a call of the schema as a tool."""
    name = schema if isinstance(schema, str) else schema.__name__
    return tool_calls((name, payload), tokens=tokens)


def text(content: str, tokens: tuple[int, int] | None = None) -> AIMessage:
    """A plain reply with no tool call (ends an investigation loop)."""
    return AIMessage(content=content, usage_metadata=usage(*tokens) if tokens else None)
