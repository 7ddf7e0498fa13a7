"""A secret planted in tool output, logs, probe reasons, feedback and connection strings never reaches a prompt."""

from __future__ import annotations

import pytest
from llm_fixtures import DIAGNOSIS_ANSWER, PLAN_ANSWER, FakeRead, cache_inventory, redis_incident, redis_info

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer, tool_calls
from opsgraph.tools.snapshot import Health, Snapshot

PASSWORD = "s3cr3t-Cache-Pw-991"  # held by the variable the inventory names
OTHER = "Pg-Only-In-Urls-7731"  # appears only inside connection strings


def test_planted_secrets_never_appear_in_any_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_PASSWORD", PASSWORD)
    inventory = cache_inventory(password_env="CACHE_PASSWORD")
    logs = {
        "lines": [
            f'{{"level":"error","msg":"AUTH failed","password":"{PASSWORD}"}}',
            f"connecting to postgresql://shop:{OTHER}@127.0.0.1:15432/shop",
            f"redis://default:{PASSWORD}@127.0.0.1:16379/0 refused",
            f"retrying with {PASSWORD} in 1s",  # a bare value: only the literal rule catches it
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        ]
    }
    read = FakeRead({"redis_info": redis_info(requirepass=PASSWORD), "process_logs": logs})
    snapshot = Snapshot(
        resource="cache", kind="redis", health=Health.FAILED, symptom="redis_memory_pressure",
        reasons=[f"probe of redis://:{PASSWORD}@127.0.0.1:16379 failed: OOM"], taken_at=1.0,
    )  # fmt: skip
    model = ScriptedChatModel.of([
        tool_calls(("redis_info", {"resource": "cache"}), ("process_logs", {"resource": "cache", "lines": 50})),
        answer(FinalDiagnosis, {**DIAGNOSIS_ANSWER, "evidence": ["AUTH failures in the log"]}),
        answer(FinalPlan, PLAN_ANSWER),
    ])  # fmt: skip
    reasoner = ModelReasoner(model, inventory=inventory)
    feedback = f"verifier: still failing; DSN host=db password={OTHER}"
    diagnosis = reasoner.diagnose(redis_incident(), snapshot, read, feedback)
    plan = reasoner.plan(redis_incident(), diagnosis, inventory.get("cache"), read, feedback)
    assert diagnosis.fallback is None and plan.fallback is None
    assert [tool for tool, _ in read.calls].count("process_logs") == 1

    sent = model.prompt_text()
    assert "AUTH failed" in sent and "connecting to postgresql://shop:" in sent  # the evidence itself got through
    assert PASSWORD not in sent
    assert OTHER not in sent
    assert "eyJzdWIiOiIxMjM0NTY3ODkwIn0" not in sent
    assert len(model.prompts) == 3


def test_secrets_cut_by_compaction_do_not_leak_a_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redaction runs before compaction: truncation cannot leave half a password behind."""
    long_secret = "Q" * 30 + "tail-of-secret-0001"
    monkeypatch.setenv("CACHE_PASSWORD", long_secret)
    inventory = cache_inventory(password_env="CACHE_PASSWORD")
    read = FakeRead({"redis_info": {"blob": long_secret + "x" * 5000}})
    model = ScriptedChatModel.of(
        [tool_calls(("redis_info", {"resource": "cache"})), answer(FinalDiagnosis, DIAGNOSIS_ANSWER)]
    )
    ModelReasoner(model, inventory=inventory).diagnose(
        redis_incident(), Snapshot(resource="cache", kind="redis", health=Health.FAILED, taken_at=1.0), read, None
    )
    assert "QQQQQQQQQQ" not in model.prompt_text()
