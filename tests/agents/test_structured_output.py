"""Structured output negotiates what the provider supports, validates, repairs once, then falls back quietly.

The provider tests run the real `ChatOpenAI` (built by the model factory from an
`openai:` spec and `OPENAI_BASE_URL`, as a user configures it) against a real local HTTP
server that answers like llama-cpp-python's: json_schema refused with HTTP 500.
"""

from __future__ import annotations

import logging

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from llm_fixtures import (
    DIAGNOSIS_ANSWER,
    PLAN_ANSWER,
    FakeRead,
    cache_inventory,
    cache_resource,
    redis_incident,
    redis_snapshot,
)
from openai_stub import OpenAIStub, StubReply, openai_stub

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer, text
from opsgraph.agents.models import build_chat_model
from opsgraph.agents.records import Diagnosis


def stub_reasoner(stub: OpenAIStub) -> ModelReasoner:
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "not-needed-locally"}
    model = build_chat_model("openai:gemma-3-270m", timeout_s=10, max_retries=0, env=env)
    return ModelReasoner(model, inventory=cache_inventory())


def diagnose(r: ModelReasoner) -> Diagnosis:
    return r.diagnose(redis_incident(), redis_snapshot(), FakeRead(), None)


def shape(request: dict[str, object]) -> str:
    """What a request asked for: a json_schema/json_object format, a forced tool, or free tool use."""
    response_format = request.get("response_format")
    if isinstance(response_format, dict):
        return str(response_format["type"])
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return f"forced {choice['function']['name']}"
    return "tools" if request.get("tools") else "text"


def test_json_schema_refused_like_llama_cpp_then_a_forced_tool_call_answers() -> None:
    with openai_stub() as stub:
        stub.queue(
            StubReply(tool_calls=[("redis_info", {"resource": "cache"})], prompt_tokens=900, completion_tokens=20),
            StubReply(text="I have read enough.", prompt_tokens=1000, completion_tokens=8),
            StubReply(tool_calls=[("FinalDiagnosis", DIAGNOSIS_ANSWER)], prompt_tokens=1100, completion_tokens=90),
            StubReply(text="no reads needed", prompt_tokens=1200, completion_tokens=5),
            StubReply(tool_calls=[("FinalPlan", PLAN_ANSWER)], prompt_tokens=1300, completion_tokens=70),
        )
        r = stub_reasoner(stub)
        diagnosis = diagnose(r)
        plan = r.plan(redis_incident(), diagnosis, cache_resource(), FakeRead(), None)
    assert diagnosis.fallback is None and diagnosis.backend == "gemma-3-270m"
    assert diagnosis.root_cause == DIAGNOSIS_ANSWER["root_cause"]
    assert plan.fallback is None and [s.tool for s in plan.steps] == ["redis_scale_memory"]
    assert [shape(body) for body in stub.requests] == [
        "tools", "tools",
        "json_schema",  # refused with HTTP 500, as llama-cpp-python's server does
        "forced FinalDiagnosis",
        "tools",
        "forced FinalPlan",  # remembered: no second try of json_schema
    ]  # fmt: skip
    # Every request capped the reply's length in the field compatible servers read.
    assert {body.get("max_tokens") for body in stub.requests} == {1024}
    assert not any("max_completion_tokens" in body for body in stub.requests)
    # The conversation went on after the tool call: its assistant message went with "" content, not null.
    assert [m.get("content") for m in stub.requests[1]["messages"] if m["role"] == "assistant"] == [""]
    # Usage as the server counted it; the refused request cost nothing.
    assert diagnosis.tokens["input_tokens"] == 900 + 1000 + 1100 and diagnosis.tokens["estimated_calls"] == 0
    assert plan.tokens["input_tokens"] == 1200 + 1300
    assert "Input should be 'text' or 'json_object'" in r._loop.structured.refused["json_schema"]


def test_json_mode_is_the_last_resort_and_is_told_the_schema() -> None:
    with openai_stub(refuse=frozenset({"json_schema", "tools"})) as stub:
        stub.queue(StubReply(text=f"Here it is: {FinalDiagnosis.model_validate(DIAGNOSIS_ANSWER).model_dump_json()}"))
        diagnosis = diagnose(stub_reasoner(stub))
    assert diagnosis.fallback is None, diagnosis.fallback
    assert diagnosis.root_cause == DIAGNOSIS_ANSWER["root_cause"]
    # Tools refused (HTTP 400): no reading; the answer by json_schema, a forced tool, then JSON mode.
    assert [shape(body) for body in stub.requests] == ["tools", "json_schema", "forced FinalDiagnosis", "json_object"]
    last = stub.requests[-1]["messages"]
    assert isinstance(last, list) and '"root_cause"' in last[-1]["content"]  # the schema, spelt out


def test_an_invalid_answer_is_sent_back_once_with_the_validation_error() -> None:
    bad = {**DIAGNOSIS_ANSWER, "confidence": 7}
    model = ScriptedChatModel.of([answer(FinalDiagnosis, bad), answer(FinalDiagnosis, DIAGNOSIS_ANSWER)])
    r = ModelReasoner(model, inventory=cache_inventory())
    diagnosis = diagnose(r)
    assert diagnosis.fallback is None and diagnosis.confidence == 0.8
    repair = model.prompts[-1]
    [told] = [m for m in repair if isinstance(m, ToolMessage)]
    assert "confidence: Input should be less than or equal to 1" in str(told.content)
    assert told.tool_call_id == model.script[0].tool_calls[0]["id"]  # the provider sees its call answered
    assert isinstance(repair[-1], HumanMessage) and "not a valid FinalDiagnosis" in str(repair[-1].content)
    assert len(model.prompts) == 2


def test_a_second_invalid_answer_falls_back_with_one_warning_line_and_no_traceback(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ScriptedChatModel.of([text("it is memory, probably"), text("{broken"), answer(FinalPlan, {"steps": 3})])
    r = ModelReasoner(model, inventory=cache_inventory())
    with caplog.at_level(logging.INFO):
        diagnosis = diagnose(r)
    assert diagnosis.backend == "runbook" and diagnosis.fallback is not None
    assert diagnosis.fallback.startswith(
        "malformed FinalDiagnosis: no FinalDiagnosis in the reply (it called FinalPlan)"
    )
    assert len(model.prompts) == 3  # the loop's reply, the structured answer, its one repair
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.getMessage() for record in warnings] == [
        f"model scripted diagnosis failed ({diagnosis.fallback}); using runbook"
    ]
    assert warnings[0].exc_info is None
    assert "Traceback" not in capsys.readouterr().err


def test_errors_that_another_method_cannot_cure_do_not_negotiate() -> None:
    model = ScriptedChatModel.of([TimeoutError("read timed out")])
    r = ModelReasoner(model, inventory=cache_inventory(), max_tool_steps=0)  # straight to the structured answer
    diagnosis = diagnose(r)
    assert diagnosis.fallback == "model timed out: read timed out"
    assert r._loop.structured.method == "json_schema" and r._loop.structured.refused == {}


def test_a_provider_that_refuses_every_method_is_a_recorded_fallback() -> None:
    with openai_stub(refuse=frozenset({"json_schema", "json_object", "tools"})) as stub:
        diagnosis = diagnose(stub_reasoner(stub))
    assert diagnosis.backend == "runbook" and diagnosis.fallback is not None
    assert diagnosis.fallback.startswith("the provider refused every structured-output method (json_schema: ")
    assert "function_calling: " in diagnosis.fallback and "json_mode: " in diagnosis.fallback
    assert "\n" not in diagnosis.fallback  # the server's multi-line report, folded: one log line
    assert len(stub.requests) == 4  # tools once, then each method once: bounded
