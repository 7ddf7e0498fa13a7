"""What one diagnose/plan call may spend: tokens and wall-clock time, checked around every model call.

Providers that report usage are counted as reported; for those that do not, the
characters sent are estimated as tokens, so the budget binds either way. Tool
definitions travel with every call and count as input too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable

# Rough chars-per-token for prompts whose usage the provider does not report.
CHARS_PER_TOKEN = 4


class ModelFailure(RuntimeError):
    """The model's answer cannot be used; `str(self)` is the reason recorded as `fallback`."""


class Usage:
    """Tokens spent in one diagnose/plan call, checked against the budget after every reply."""

    def __init__(self, budget: int, deadline_s: float) -> None:
        self.budget = budget
        self.input_tokens = 0
        self.output_tokens = 0
        self.prompt_chars = 0
        self.calls = 0
        self.estimated_calls = 0
        # Tool definitions travel with every call and count as input; set by the loop.
        self.overhead_chars = 0
        self._deadline = time.monotonic() + deadline_s
        self._deadline_s = deadline_s

    def before_call(self, messages: Sequence[BaseMessage]) -> None:
        if time.monotonic() > self._deadline:
            raise ModelFailure(f"deadline of {self._deadline_s:.0f} s exceeded after {self.calls} model calls")
        estimate = (message_chars(messages) + self.overhead_chars) // CHARS_PER_TOKEN
        if self.spent + estimate > self.budget:
            raise ModelFailure(f"token budget exceeded: {self.spent} spent + ~{estimate} next > {self.budget}")

    def after_call(self, messages: Sequence[BaseMessage], reply: object) -> None:
        self.calls += 1
        chars = message_chars(messages) + self.overhead_chars
        self.prompt_chars += chars
        metadata = reply.usage_metadata if isinstance(reply, AIMessage) else None
        if metadata:
            self.input_tokens += metadata["input_tokens"]
            self.output_tokens += metadata["output_tokens"]
        else:  # the provider reports nothing: count our estimate, so the budget still binds
            self.estimated_calls += 1
            self.input_tokens += chars // CHARS_PER_TOKEN
            self.output_tokens += message_chars([reply]) // CHARS_PER_TOKEN if isinstance(reply, BaseMessage) else 0
        if self.spent > self.budget:
            raise ModelFailure(f"token budget exceeded: {self.spent} > {self.budget}")

    @property
    def spent(self) -> int:
        return self.input_tokens + self.output_tokens

    def tokens(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_calls": self.calls,
            "prompt_chars": self.prompt_chars,
            "estimated_calls": self.estimated_calls,
        }


def message_chars(messages: Iterable[BaseMessage]) -> int:
    """Characters of content and tool-call arguments: what an estimate of tokens is based on."""
    total = 0
    for message in messages:
        total += len(message.content) if isinstance(message.content, str) else len(json.dumps(message.content))
        for call in getattr(message, "tool_calls", []):
            total += len(json.dumps(call["args"], default=str))
    return total


def ask(model: Runnable[LanguageModelInput, Any], messages: list[BaseMessage], usage: Usage) -> AIMessage:
    """One model call, counted against the budget; the reply is appended to `messages` (a conversation goes on)."""
    usage.before_call(messages)
    reply = model.invoke(messages)
    usage.after_call(messages, reply)
    if not isinstance(reply, AIMessage):
        raise ModelFailure(f"model replied with {type(reply).__name__}, not a message")
    messages.append(reply)
    return reply
