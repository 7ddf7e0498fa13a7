"""The bounded tool-calling loop: the model reads (at most `max_tool_steps` rounds), then answers.

The final answer is offered as one more "tool", so a model that knows enough ends
the loop in one reply; one that keeps reading is asked for a structured answer
when the rounds run out, by whichever method its provider supports (`structured`);
a provider that refuses tools altogether is asked for the answer without reading.
Every call is checked against the `Usage` budget. An answer that does not validate is
sent back once with the validation error; a second one is a `ModelFailure`, never a guess.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from opsgraph.agents.llm.budget import Usage, ask
from opsgraph.agents.llm.structured import (
    StructuredOutput,
    one_line,
    parse_json,
    refuses_shape,
    repair_messages,
    validated,
)

log = logging.getLogger(__name__)

AnswerT = TypeVar("AnswerT", bound=BaseModel)


class ToolLoop:
    """One model, its round limit, and the redaction applied to every tool message it reads."""

    def __init__(self, model: BaseChatModel, max_tool_steps: int, clean: Callable[[str], str]) -> None:
        self._model = model
        self.max_tool_steps = max_tool_steps
        self._clean = clean
        self.structured = StructuredOutput(model)

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
        repairs = 1
        if tools:
            offered: list[BaseTool | type[BaseModel]] = [*tools, schema]
            bound = self._model.bind_tools(offered)
            usage.overhead_chars = len(json.dumps([convert_to_openai_tool(t) for t in offered]))
            for _ in range(self.max_tool_steps):
                try:
                    reply = ask(bound, messages, usage)
                except Exception as error:
                    if reads or not refuses_shape(error):
                        raise
                    # A provider (or model) that cannot call tools can still answer: without reading.
                    log.info(
                        "tool calling refused (%s); answering without reading",
                        one_line(f"{type(error).__name__}: {error}"),
                    )
                    break
                if not reply.tool_calls:
                    if (direct := parse_json(reply.content, schema)) is not None:
                        return direct, reads
                    break
                if any(c["name"] == schema.__name__ for c in reply.tool_calls):
                    parsed, problem = validated(reply, schema)
                    if parsed is not None:
                        return parsed, reads
                    # The one repair round: every call of the reply answered, the answer's with its errors.
                    messages.extend(repair_messages(reply, schema, problem))
                    repairs = 0
                    break
                for call in reply.tool_calls:
                    messages.append(self._run_call(call["name"], call["args"], call["id"], by_name))
                    reads += 1
        if repairs:
            messages.append(HumanMessage(final_prompt))
        return self.structured.answer(messages, schema, usage, repairs=repairs), reads

    def _run_call(
        self, name: str, args: dict[str, Any], call_id: str | None, tools: dict[str, BaseTool]
    ) -> ToolMessage:
        tool = tools.get(name)
        if tool is None:
            content = f"error: {name!r} is not one of your tools ({', '.join(tools)}); nothing was run"
        else:
            content = str(tool.invoke(args))
        return ToolMessage(content=self._clean(content), tool_call_id=call_id or name, name=name)
