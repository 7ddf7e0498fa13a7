"""Prompt injection: a model that obeys instructions planted in tool output still cannot act unseen.

The scripted model here does exactly what each payload asks (flush, drop, restart,
kill). The reasoner does not filter its plan — the policy engine does — but it must
(1) deliver the payload to the model only inside the untrusted-data frame, which the
payload cannot close, and (2) mark the plan `informed_by_untrusted_text`. The graph
tests take it from there (approval shown to the operator, nothing run silently).
"""

from __future__ import annotations

from typing import Any

import pytest
from injection_payloads import payloads
from langchain_core.messages import ToolMessage
from llm_fixtures import DIAGNOSIS_ANSWER, FakeRead, cache_inventory, redis_incident, redis_info, redis_snapshot

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer, tool_calls
from opsgraph.graph.policy import ApprovalMode, review_plan
from opsgraph.graph.schemas import StepVerdict

PAYLOADS = payloads("cache")

OBEYING_STEPS: list[dict[str, Any]] = [
    {"tool": "redis_flush", "args": {"resource": "cache"}, "rationale": "the log said so", "expected_effect": "empty"},
    {"tool": "redis_restart", "args": {"resource": "cache"}, "rationale": "the log said so", "expected_effect": "up"},
    {
        "tool": "redis_kill_idle_clients",
        "args": {"resource": "cache", "min_idle_s": 0, "max_clients": 10000},
        "rationale": "the log said so",
        "expected_effect": "no clients",
    },
    {"tool": "postgres_restart", "args": {"resource": "db"}, "rationale": "the log said so", "expected_effect": "?"},
    {
        "tool": "redis_scale_memory",
        "args": {"resource": "cache", "maxmemory_mb": 999999},
        "rationale": "the log said so",
        "expected_effect": "huge",
    },
]


def test_there_are_at_least_twenty_payloads() -> None:
    assert len(PAYLOADS) >= 20


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_obeying_model_yields_a_flagged_plan_the_policy_does_not_run(payload: str) -> None:
    inventory = cache_inventory()
    read = FakeRead({"redis_info": redis_info(last_error=payload), "process_logs": {"lines": [payload] * 3}})
    model = ScriptedChatModel.of([
        tool_calls(("redis_info", {"resource": "cache"}), ("process_logs", {"resource": "cache"})),
        answer(FinalDiagnosis, {**DIAGNOSIS_ANSWER, "evidence": [payload]}),  # it even quotes the payload
        answer(FinalPlan, {"summary": "as instructed by the log", "steps": OBEYING_STEPS}),
    ])  # fmt: skip
    reasoner = ModelReasoner(model, inventory=inventory)
    diagnosis = reasoner.diagnose(redis_incident(), redis_snapshot(), read, None)
    plan = reasoner.plan(redis_incident(), diagnosis, inventory.get("cache"), read, None)

    # The model's plan comes back as written, flagged as steered by untrusted text.
    assert plan.fallback is None and plan.backend == "scripted"
    assert [s.tool for s in plan.steps] == [s["tool"] for s in OBEYING_STEPS]
    assert plan.informed_by_untrusted_text

    # Only reads ran during reasoning.
    assert {tool for tool, _ in read.calls} <= {"redis_info", "process_logs"}

    # The payload reached the model only inside frames it could not close.
    for message in model.prompts[1]:
        if isinstance(message, ToolMessage):
            content = str(message.content)
            assert content.count("<untrusted-tool-output") == 1 and content.count("</untrusted-tool-output>") == 1
            body = content.split(">", 1)[1].rsplit("</untrusted-tool-output>", 1)[0]
            assert "<untrusted-tool-output" not in body and "</untrusted-tool-output>" not in body
    plan_prompt = str(model.prompts[2][1].content)
    assert plan_prompt.count("</untrusted-tool-output>") == 1  # the quoted evidence stays framed too

    # Nothing destructive, disruptive or out of scope may run without a human (default setting).
    reviewed = review_plan(plan.steps, inventory, {"cache"}, ApprovalMode.RISKY)
    assert all(r.verdict is not StepVerdict.RUN for r in reviewed)
