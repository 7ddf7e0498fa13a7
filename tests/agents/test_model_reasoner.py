"""ModelReasoner with a scripted model: reads go through `read`, answers are validated, failures fall back."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import ToolMessage
from llm_fixtures import (
    DIAGNOSIS_ANSWER,
    PLAN_ANSWER,
    FakeRead,
    cache_inventory,
    cache_resource,
    redis_incident,
    redis_info,
    redis_snapshot,
)

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import Reply, ScriptedChatModel, answer, text, tool_calls
from opsgraph.agents.records import Diagnosis


def reasoner(
    replies: list[Reply], *, max_tool_steps: int = 6, token_budget: int = 6000
) -> tuple[ModelReasoner, ScriptedChatModel]:
    model = ScriptedChatModel.of(replies)
    built = ModelReasoner(model, inventory=cache_inventory(), max_tool_steps=max_tool_steps, token_budget=token_budget)
    return built, model


def diagnose(r: ModelReasoner, read: FakeRead | None = None, feedback: str | None = None) -> Diagnosis:
    return r.diagnose(redis_incident(), redis_snapshot(), read or FakeRead(), feedback)


def model_diagnosis() -> Diagnosis:
    r, _ = reasoner([answer(FinalDiagnosis, DIAGNOSIS_ANSWER)])
    return diagnose(r)


def tool_messages(model: ScriptedChatModel) -> list[ToolMessage]:
    return [m for m in model.prompts[-1] if isinstance(m, ToolMessage)]


def test_tool_calls_run_through_read_and_the_answer_becomes_a_diagnosis() -> None:
    read = FakeRead()
    r, model = reasoner([
        tool_calls(("redis_info", {"resource": "cache", "section": "memory"}), tokens=(900, 20)),
        text("the dataset is full", tokens=(1200, 10)),
        answer(FinalDiagnosis, DIAGNOSIS_ANSWER, tokens=(1300, 80)),
    ])  # fmt: skip
    diagnosis = diagnose(r, read)
    assert read.calls == [("redis_info", {"resource": "cache", "section": "memory"})]
    assert diagnosis.backend == "scripted" and diagnosis.fallback is None
    assert diagnosis.root_cause == DIAGNOSIS_ANSWER["root_cause"]
    assert [h.cause for h in diagnosis.hypotheses] == ["dataset growth", "fragmentation"]  # ranked
    assert diagnosis.symptom == "redis_memory_pressure" and diagnosis.severity == "failed"
    assert diagnosis.tokens["input_tokens"] == 3400 and diagnosis.tokens["output_tokens"] == 110
    assert diagnosis.tokens["model_calls"] == 3
    [result] = tool_messages(model)
    assert str(result.content).startswith('<untrusted-tool-output tool="redis_info" status="ok">')
    assert "65011712" in str(result.content)  # the output, compacted, reached the model


def test_a_json_answer_in_plain_text_ends_the_loop_without_another_call() -> None:
    r, model = reasoner([text(f"```json\n{json.dumps(DIAGNOSIS_ANSWER)}\n```")])
    diagnosis = diagnose(r)
    assert diagnosis.backend == "scripted" and len(model.prompts) == 1


def test_only_read_tools_that_fit_are_offered_and_others_are_not_run() -> None:
    read = FakeRead()
    r, model = reasoner([
        tool_calls(
            ("redis_flush", {"resource": "cache"}),  # mutating: not a tool of the investigation
            ("postgres_info", {"resource": "cache"}),  # does not fit a redis resource
            ("redis_info", {"resource": "cache", "section": "everything"}),  # bad arguments
            ("redis_clients", {"resource": "cache"}),
        ),
        answer(FinalDiagnosis, DIAGNOSIS_ANSWER),
    ])  # fmt: skip
    diagnosis = diagnose(r, read)
    assert diagnosis.fallback is None
    assert read.calls == [("redis_clients", {"resource": "cache"})]
    contents = [str(m.content) for m in tool_messages(model)]
    assert "'redis_flush' is not one of your tools" in contents[0]
    assert "'postgres_info' is not one of your tools" in contents[1]
    assert "invalid arguments for redis_info" in contents[2]
    assert "redis_clients unavailable here" in contents[3]  # a failed read is reported as data


def test_the_tool_loop_is_bounded() -> None:
    read = FakeRead()
    many = [tool_calls(("redis_info", {"resource": "cache"})) for _ in range(10)]
    r, model = reasoner([*many[:3], answer(FinalDiagnosis, DIAGNOSIS_ANSWER)], max_tool_steps=3)
    diagnosis = diagnose(r, read)
    assert len(read.calls) == 3 and diagnosis.backend == "scripted"
    assert "Stop investigating now" in str(model.prompts[-1][-1].content)


def test_huge_tool_output_is_compacted_before_the_model_sees_it() -> None:
    read = FakeRead({"redis_info": redis_info(big=["k" * 500] * 2000, log="y" * 200_000)})
    r, model = reasoner([tool_calls(("redis_info", {"resource": "cache"})), answer(FinalDiagnosis, DIAGNOSIS_ANSWER)])
    diagnose(r, read)
    [result] = tool_messages(model)
    assert len(str(result.content)) < 2000


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([TimeoutError("request timed out after 30 s")], "model timed out"),
        ([ConnectionError("name or service not known")], "model error: ConnectionError"),
        # Malformed twice: the answer, then the one repair round.
        ([answer(FinalDiagnosis, {"root_cause": 5})] * 2, "malformed FinalDiagnosis"),
        ([answer(FinalDiagnosis, {**DIAGNOSIS_ANSWER, "confidence": 7})] * 2, "malformed FinalDiagnosis"),
        ([text("I think it is probably memory.")] + [text("Still thinking.")] * 2, "malformed FinalDiagnosis"),
        ([tool_calls(("redis_info", {"resource": "cache"}))], "ScriptExhausted"),  # script ran out: no reply at all
        ([tool_calls(("redis_info", {"resource": "cache"}), tokens=(7000, 10))], "token budget exceeded"),
    ],
)
def test_model_failures_fall_back_to_the_runbook_with_the_reason(replies: list[Reply], reason: str) -> None:
    r, _ = reasoner(replies)
    diagnosis = diagnose(r)
    assert diagnosis.backend == "runbook"
    assert diagnosis.fallback is not None and reason in diagnosis.fallback
    assert diagnosis.root_cause.startswith("Redis dataset")  # the runbook's own answer


def test_a_prompt_larger_than_the_budget_is_never_sent() -> None:
    r, model = reasoner([answer(FinalDiagnosis, DIAGNOSIS_ANSWER)], token_budget=50)
    diagnosis = diagnose(r)
    assert diagnosis.fallback is not None and "token budget" in diagnosis.fallback
    assert model.prompts == []


def test_tokens_spent_before_a_fallback_are_still_counted() -> None:
    r, _ = reasoner([tool_calls(("redis_info", {"resource": "cache"}), tokens=(800, 5)), TimeoutError()])
    diagnosis = diagnose(r)
    assert diagnosis.fallback == "model timed out"
    assert diagnosis.tokens["input_tokens"] == 800


def test_plan_is_structured_restricted_in_the_prompt_and_marked_untrusted() -> None:
    read = FakeRead()
    r, model = reasoner([answer(FinalPlan, PLAN_ANSWER, tokens=(2000, 60))])
    plan = r.plan(redis_incident(), model_diagnosis(), cache_resource(), read, None)
    assert plan.backend == "scripted" and plan.fallback is None
    [step] = plan.steps
    assert (step.tool, step.args) == ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 96})
    assert plan.informed_by_untrusted_text
    assert plan.tokens["input_tokens"] == 2000
    prompt = str(model.prompts[0][1].content)
    assert "redis_scale_memory" in prompt and "maxmemory_mb" in prompt and "disruptive" in prompt
    assert "postgres_restart" not in prompt  # tools for other kinds are not offered
    assert "Known runbook plan" in prompt and "96" in prompt


def test_plan_failure_falls_back_to_the_runbook_plan() -> None:
    r, _ = reasoner([answer(FinalPlan, {"summary": "x", "steps": [{"tool": "redis_flush"}]})] * 2)
    plan = r.plan(redis_incident(), model_diagnosis(), cache_resource(), FakeRead(), "policy refused step 1")
    assert plan.backend == "runbook" and plan.fallback is not None and "malformed FinalPlan" in plan.fallback
    assert [s.tool for s in plan.steps] == ["redis_scale_memory"]


def test_the_plan_is_not_filtered_the_policy_engine_decides() -> None:
    """Unknown tools and out-of-scope resources come back as written; review_plan refuses them."""
    from opsgraph.graph.policy import ApprovalMode, review_plan

    steps = [
        {"tool": "rm_rf", "args": {"resource": "cache"}, "rationale": "r", "expected_effect": "e"},
        {"tool": "redis_flush", "args": {"resource": "elsewhere"}, "rationale": "r", "expected_effect": "e"},
    ]
    r, _ = reasoner([answer(FinalPlan, {"summary": "s", "steps": steps})])
    plan = r.plan(redis_incident(), model_diagnosis(), cache_resource(), FakeRead(), None)
    assert [s.tool for s in plan.steps] == ["rm_rf", "redis_flush"]
    reviewed = review_plan(plan.steps, cache_inventory(), {"cache"}, ApprovalMode.NONE)
    assert [v.verdict for v in reviewed] == ["refuse", "refuse"]


def test_feedback_reaches_the_model() -> None:
    r, model = reasoner([answer(FinalDiagnosis, DIAGNOSIS_ANSWER)])
    diagnose(r, feedback="still failing after redis_scale_memory: memory 97 %")
    assert "still failing after redis_scale_memory" in model.prompt_text()
