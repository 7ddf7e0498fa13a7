"""Structured answers from any provider: negotiate the method it supports, validate, repair once.

Providers differ in how they return an answer shaped like a schema. OpenAI and Gemini take
the JSON schema as the response format; llama-cpp-python's OpenAI-compatible server refuses
that (HTTP 500: only ``text`` / ``json_object``) but answers a forced tool call; some servers
have only a JSON mode. `StructuredOutput` tries the methods in `METHODS` order —
``json_schema`` → ``function_calling`` → ``json_mode`` — moving on only when the provider
refuses the *shape* of the request (an error while building it, or HTTP 400/415/422/500/501;
never a timeout, a refused key, a missing model or a rate limit, which another method would
not cure), and remembers what it refused, so later calls go straight to a method that works.
Once a method has answered, it is settled: a later error on it is that call's failure (the
conversation, the server), not the method's, and is not negotiated away.

Whatever comes back is validated here against the schema. An answer that does not validate
is sent back once with the validation error (one repair round); a second bad answer is a
`ModelFailure`, and the reasoner's fallback answers instead.
"""

from __future__ import annotations

import json
import logging
from typing import TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from opsgraph.agents.llm.budget import ModelFailure, Usage

log = logging.getLogger(__name__)

AnswerT = TypeVar("AnswerT", bound=BaseModel)

METHODS: tuple[str, ...] = ("json_schema", "function_calling", "json_mode")
# HTTP statuses with which servers refuse a request's shape (response_format, tools) rather than the call.
REFUSING_STATUS = frozenset({400, 415, 422, 500, 501})


class StructuredOutput:
    """One model's structured answers, by the first method its provider has not refused."""

    def __init__(self, model: BaseChatModel, methods: tuple[str, ...] = METHODS) -> None:
        self._model = model
        self._methods = list(methods)
        self.refused: dict[str, str] = {}  # method -> what the provider said when it refused it
        self.settled: str | None = None  # the method that has answered at least once

    @property
    def method(self) -> str | None:
        """The method the next call will try first (None: the provider refused them all)."""
        return self._methods[0] if self._methods else None

    def answer(self, messages: list[BaseMessage], schema: type[AnswerT], usage: Usage, *, repairs: int = 1) -> AnswerT:
        """The model's answer as `schema`; `messages` grows by the exchange, repairs included."""
        reply, parsed, problem = self._ask(messages, schema, usage)
        while parsed is None:
            if repairs <= 0:
                raise ModelFailure(f"malformed {schema.__name__}: {problem}")
            repairs -= 1
            messages.extend(repair_messages(reply, schema, problem))
            reply, parsed, problem = self._ask(messages, schema, usage)
        return parsed

    def _ask(
        self, messages: list[BaseMessage], schema: type[AnswerT], usage: Usage
    ) -> tuple[AIMessage | None, AnswerT | None, str]:
        """One answer by the first method the provider accepts: (reply, parsed or None, what was wrong)."""
        for method in list(self._methods):
            try:
                runnable = self._model.with_structured_output(schema, method=method, include_raw=True)
            except (ValueError, NotImplementedError, TypeError) as error:  # this chat class has no such method
                self._refuse(method, error)
                continue
            sent = messages
            usage.overhead_chars = len(json.dumps(convert_to_openai_tool(schema)))
            if method == "json_mode":  # the provider is not told the schema: the prompt says it
                sent = [*messages, HumanMessage(json_instruction(schema))]
                usage.overhead_chars = 0
            usage.before_call(sent)
            try:
                result = runnable.invoke(sent)
            except Exception as error:
                if method == self.settled or not refuses_shape(error):
                    raise
                self._refuse(method, error)
                continue
            self.settled = method
            raw = result.get("raw") if isinstance(result, dict) else None
            usage.after_call(sent, raw)
            reply = raw if isinstance(raw, AIMessage) else None
            if reply is not None:
                messages.append(reply)
            parsed, problem = validated(reply, schema)
            return reply, parsed, problem
        said = "; ".join(f"{method}: {why[:140]}" for method, why in self.refused.items())
        raise ModelFailure(f"the provider refused every structured-output method ({said})"[:500])

    def _refuse(self, method: str, error: BaseException) -> None:
        self._methods.remove(method)
        self.refused[method] = one_line(f"{type(error).__name__}: {error}")[:200]
        following = self.method or "none left"
        log.info("structured output by %s refused (%s); next: %s", method, self.refused[method], following)


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of spaces folded (server errors quote whole validation reports)."""
    return " ".join(text.split())


def refuses_shape(error: BaseException) -> bool:
    """Whether `error` is a provider refusing the request's shape, so that another method may work."""
    if isinstance(error, NotImplementedError):
        return True
    status = _status(error)
    return status in REFUSING_STATUS


def _status(error: BaseException) -> int | None:
    """The HTTP status an SDK error carries: openai/anthropic/ollama `status_code`, httpx's response, google `code`."""
    for candidate in (
        getattr(error, "status_code", None),
        getattr(getattr(error, "response", None), "status_code", None),
        getattr(error, "code", None),
    ):
        if isinstance(candidate, int):
            return candidate
    return None


def validated(reply: AIMessage | None, schema: type[AnswerT]) -> tuple[AnswerT | None, str]:
    """The reply as `schema` — from a call of the schema as a tool, else JSON in its text — or what was wrong."""
    if reply is None:
        return None, "no reply"
    calls = [call for call in reply.tool_calls if call["name"] == schema.__name__]
    if calls:
        try:
            return schema.model_validate(calls[0]["args"]), ""
        except ValidationError as error:
            return None, errors(error)
    text = json_text(reply.content)
    if text is None:
        called = ", ".join(call["name"] for call in reply.tool_calls)
        return None, f"no {schema.__name__} in the reply" + (f" (it called {called})" if called else "")
    try:
        return schema.model_validate_json(text), ""
    except ValidationError as error:
        return None, errors(error)


def parse_json(content: object, schema: type[AnswerT]) -> AnswerT | None:
    """A final answer written as JSON text (optionally fenced), validated; None if it is not one."""
    text = json_text(content)
    if text is None:
        return None
    try:
        return schema.model_validate_json(text)
    except ValidationError:
        return None


def json_text(content: object) -> str | None:
    """The outermost ``{...}`` of a text reply (fences and prose around it dropped), or None."""
    if not isinstance(content, str):
        return None
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end <= start:
        return None
    return content[start : end + 1]


def repair_messages(reply: AIMessage | None, schema: type[BaseModel], problem: str) -> list[BaseMessage]:
    """What the model is told about its invalid answer: every tool call answered (providers require it), then why."""
    told: list[BaseMessage] = [
        ToolMessage(
            content=f"error: not accepted: {problem}"
            if call["name"] == schema.__name__
            else "not run: a final answer was given in the same reply",
            tool_call_id=call["id"] or call["name"],
            name=call["name"],
        )
        for call in (reply.tool_calls if reply is not None else [])
    ]
    told.append(
        HumanMessage(
            f"Your answer was not a valid {schema.__name__}: {problem}. "
            "Answer again, once, with every required field present and correctly typed."
        )
    )
    return told


def json_instruction(schema: type[BaseModel]) -> str:
    """The schema spelt out, for providers whose JSON mode is not told it."""
    return f"Reply with one JSON object only, no prose, matching this JSON schema ({schema.__name__}):\n" + json.dumps(
        schema.model_json_schema(), separators=(",", ":")
    )


def errors(error: ValidationError) -> str:
    """A validation error in one short line: field path and message per problem."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors())[:300]
