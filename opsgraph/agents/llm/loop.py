"""The bounded tool-calling loop: the model reads (at most `max_tool_steps` rounds), then answers.

The final answer is offered as one more "tool", so a model that knows enough ends
the loop in one reply; one that keeps reading is asked for a structured answer
when the rounds run out. Every call is checked against the `Usage` budget, and an
answer that does not validate is a `ModelFailure`, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ValidationError

from opsgraph.agents.llm.budget import ModelFailure, Usage, ask

AnswerT = TypeVar("AnswerT", bound=BaseModel)


class ToolLoop:
    """One model, its round limit, and the redaction applied to every tool message it reads."""

    def __init__(self, model: BaseChatModel, max_tool_steps: int, clean: Callable[[str], str]) -> None:
        self._model = model
        self.max_tool_steps = max_tool_steps
        self._clean = clean

    def converse(
        self,
        messages: list[BaseMessage],
        tools: Sequence[BaseTool],
        schema: type[AnswerT],
        final_prompt: str,
        usage: Usage,
    ) -> tuple[AnswerT, int]:
        """Let the model read (≤ max_tool_steps rounds), then parse its final answer; returns (answer, reads)."""
        by_name = {tool.name: tool for tool in tools}
        reads = 0
        if tools:
            offered: list[BaseTool | type[BaseModel]] = [*tools, schema]
            bound = self._model.bind_tools(offered)
            usage.overhead_chars = len(json.dumps([convert_to_openai_tool(t) for t in offered]))
            for _ in range(self.max_tool_steps):
                reply = ask(bound, messages, usage)
                if not reply.tool_calls:
                    if (direct := _parse_json(reply.content, schema)) is not None:
                        return direct, reads
                    break
                if final := [c for c in reply.tool_calls if c["name"] == schema.__name__]:
                    try:
                        return schema.model_validate(final[0]["args"]), reads
                    except ValidationError as error:
                        raise ModelFailure(f"malformed {schema.__name__}: {_errors(error)}") from error
                for call in reply.tool_calls:
                    messages.append(self._run_call(call["name"], call["args"], call["id"], by_name))
                    reads += 1
        return self._final_answer(messages, schema, final_prompt, usage), reads

    def _final_answer(
        self, messages: list[BaseMessage], schema: type[AnswerT], final_prompt: str, usage: Usage
    ) -> AnswerT:
        """The rounds are over (or there were no tools): ask for the structured answer itself."""
        messages.append(HumanMessage(final_prompt))
        usage.overhead_chars = len(json.dumps(convert_to_openai_tool(schema)))
        usage.before_call(messages)
        result = self._model.with_structured_output(schema, include_raw=True).invoke(messages)
        if not isinstance(result, dict):
            raise ModelFailure(f"structured output returned {type(result).__name__}")
        usage.after_call(messages, result.get("raw"))
        parsed = result.get("parsed")
        if isinstance(parsed, schema):
            return parsed
        raw = result.get("raw")
        if isinstance(raw, AIMessage) and (from_text := _parse_json(raw.content, schema)) is not None:
            return from_text
        raise ModelFailure(f"malformed {schema.__name__}: {result.get('parsing_error') or 'no structured answer'}")

    def _run_call(
        self, name: str, args: dict[str, Any], call_id: str | None, tools: dict[str, BaseTool]
    ) -> ToolMessage:
        tool = tools.get(name)
        if tool is None:
            content = f"error: {name!r} is not one of your tools ({', '.join(tools)}); nothing was run"
        else:
            content = str(tool.invoke(args))
        return ToolMessage(content=self._clean(content), tool_call_id=call_id or name, name=name)


def _parse_json(content: object, schema: type[AnswerT]) -> AnswerT | None:
    """A final answer written as JSON text (optionally fenced), validated; None if it is not one."""
    if not isinstance(content, str):
        return None
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return schema.model_validate_json(text[start : end + 1])
    except ValidationError:
        return None


def _errors(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors())[:300]
