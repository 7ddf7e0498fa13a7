"""An operator answers an approval with a change: the plan is revised, reviewed and asked again — on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Stack, redis_resource, running_stack

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer
from opsgraph.graph.approvals import MAX_REVISIONS
from opsgraph.graph.runtime import incident_graph, resume_incident, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory

MB = 2**20


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.delenv("OPSGRAPH_ROLES", raising=False)
    monkeypatch.delenv("OPSGRAPH_APPROVAL_TTL_S", raising=False)
    with running_stack(tmp_path, [redis_resource()]) as running:  # maxmemory 32 MiB, policy ceiling 256 MiB
        fill_redis_memory(running.inventory.get("cache"))
        yield running


def _digests(request: dict[str, Any]) -> list[str]:
    return [step["digest"] for step in request["steps"]]


def _revise(by: str, change: str, request: dict[str, Any]) -> dict[str, Any]:
    return {"decision": "revise", "by": by, "change": change, "digests": _digests(request)}


def _maxmemory_mb(stack: Stack) -> float:
    return int(str(redis_client(stack.inventory.get("cache")).config_get("maxmemory")["maxmemory"])) / MB


def _scale_step(request: dict[str, Any]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = request["steps"]
    [step] = [s for s in steps if s["tool"] == "redis_scale_memory"]
    return step


def test_a_revised_size_is_asked_again_under_new_digests_and_is_what_runs(stack: Stack) -> None:
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        first = start_incident(graph, context, "cache", "inc-size").pending
        assert first is not None and "revise" in first["allowed_decisions"] and "change" in first["answer_format"]
        assert first["plan_no"] == 1 and first["revision"] is None and first["revisions_left"] == MAX_REVISIONS
        assert _scale_step(first)["args"]["maxmemory_mb"] != 128

        second = resume_incident(graph, context, "inc-size", _revise("bob", "only 128 MB", first)).pending
        assert second is not None and second["error"] is None
        assert second["plan_no"] == 2 and second["revisions_left"] == MAX_REVISIONS - 1
        assert _scale_step(second)["args"] == {"resource": "cache", "maxmemory_mb": 128}
        assert set(_digests(second)).isdisjoint(_digests(first))
        assert second["revision"]["by"] == "bob" and second["revision"]["change"] == "only 128 MB"
        assert second["revision"]["of_plan"] == 1 and second["revision"]["unchanged"] is False
        assert "revised at the request of bob" in second["question"]
        assert context.ledger.actions("inc-size") == []  # a revision runs nothing
        [asked] = context.ledger.approvals("inc-size")
        assert (asked["decision"], asked["decided_by"], asked["comment"]) == ("revise", "bob", "only 128 MB")
        assert asked["digest"] == _scale_step(first)["digest"]

        # The approval is bound to the new plan: the old digests no longer approve anything.
        stale = {"decision": "approve", "by": "bob", "digests": _digests(first)}
        refused = resume_incident(graph, context, "inc-size", stale).pending
        assert refused is not None and "digests do not match" in refused["error"] and refused["plan_no"] == 2
        approve = {"decision": "approve", "by": "bob", "digests": _digests(second)}
        done = resume_incident(graph, context, "inc-size", approve)
    assert done.report is not None and done.report["resolved"] is True
    assert _maxmemory_mb(stack) == 128
    [scaled] = [a for a in done.report["actions"] if a["tool"] == "redis_scale_memory"]
    assert scaled["args"]["maxmemory_mb"] == 128 and scaled["status"] == "ok"
    decisions = [(a["decision"], a["by"], a["comment"]) for a in done.report["approvals"]]
    assert decisions[0] == ("revise", "bob", "only 128 MB") and decisions[-1] == ("approve", "bob", None)
    assert any("bob asked for a change to plan 1: 'only 128 MB'" in e["event"] for e in done.report["timeline"])


def test_use_another_tool_instead_runs_that_tool_and_the_change_is_used_once(stack: Stack) -> None:
    # A purge is safe: under approval=risky the revised plan runs without asking. It cannot relieve a full
    # dataset, so verification fails and the runbook plans afresh — without the operator's change this time.
    context = stack.context(verify_deadline_s=1.0, max_retries=1)
    with incident_graph(stack.state_dir) as graph:
        first = start_incident(graph, context, "cache", "inc-purge").pending
        assert first is not None
        change = _revise("bob", "use redis_memory_purge instead", first)
        again = resume_incident(graph, context, "inc-purge", change)
        purges = [row for row in context.ledger.actions("inc-purge") if row["tool"] == "redis_memory_purge"]
        assert [row["phase"] for row in purges] == ["intent", "result"] and purges[1]["status"] == "ok"
        assert not [row for row in context.ledger.actions("inc-purge") if row["tool"] == "redis_scale_memory"]
        plans = [e["event"] for e in again.values["timeline"] if e["node"] == "planner" and "plan 2 " in e["event"]]
        assert plans and "redis_memory_purge instead of" in plans[0]
        third = again.pending
        assert third is not None and third["plan_no"] == 3 and third["revision"] is None  # consumed once
        assert again.values.get("operator_change") is None
        resume_incident(graph, context, "inc-purge", {"decision": "reject", "by": "bob"})


def test_a_change_that_cannot_apply_is_asked_again_with_why_and_runs_nothing(stack: Stack) -> None:
    context = stack.context()
    before = _maxmemory_mb(stack)
    with incident_graph(stack.state_dir) as graph:
        first = start_incident(graph, context, "cache", "inc-nonsense").pending
        assert first is not None
        vague = resume_incident(graph, context, "inc-nonsense", _revise("bob", "be gentle with it", first)).pending
        assert vague is not None and vague["plan_no"] == 2 and _digests(vague) == _digests(first)
        assert vague["error"].startswith("the rule-based backend did not understand the change 'be gentle with it'")
        assert "'only N MB'" in vague["error"] and vague["revision"]["unchanged"] is True

        # Above the policy ceiling (256 MiB): the policy refuses the revision, not the rules; plan 2 stands.
        big = resume_incident(graph, context, "inc-nonsense", _revise("bob", "only 512 MB", vague)).pending
        assert big is not None and big["plan_no"] == 3 and _digests(big) == _digests(first)
        assert "the policy refused the revised plan" in big["error"] and "policy ceiling of 256" in big["error"]

        empty = {"decision": "revise", "by": "bob", "change": "  ", "digests": _digests(big)}
        blank = resume_incident(graph, context, "inc-nonsense", empty).pending
        assert blank is not None and "needs a non-empty `change`" in blank["error"] and blank["plan_no"] == 3
        odd = {"decision": "approve", "by": "bob", "change": "only 64 MB"}
        stray = resume_incident(graph, context, "inc-nonsense", odd).pending
        assert stray is not None and "`change` goes with decision revise only" in stray["error"]
        assert context.ledger.actions("inc-nonsense") == []
        assert [a["decision"] for a in context.ledger.approvals("inc-nonsense")] == ["revise", "revise"]
        resume_incident(graph, context, "inc-nonsense", {"decision": "reject", "by": "bob"})
    assert _maxmemory_mb(stack) == before


def test_a_viewer_may_not_revise_and_revisions_are_capped(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_ROLES", "bob=operator,carol=viewer")
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-viewer").pending
        assert request is not None
        refused = resume_incident(graph, context, "inc-viewer", _revise("carol", "only 128 MB", request)).pending
        assert refused is not None and refused["plan_no"] == 1
        assert "carol is viewer and may not revise this plan; who may: bob (operator)" in refused["error"]
        assert context.ledger.approvals("inc-viewer") == []

        for _ in range(MAX_REVISIONS):
            request = resume_incident(graph, context, "inc-viewer", _revise("bob", "hmm", request)).pending
            assert request is not None and "did not understand" in request["error"]
        assert request["plan_no"] == MAX_REVISIONS + 1 and request["allowed_decisions"] == ["approve", "reject"]
        spent = resume_incident(graph, context, "inc-viewer", _revise("bob", "only 128 MB", request)).pending
        assert spent is not None and spent["plan_no"] == MAX_REVISIONS + 1
        assert f"already revised {MAX_REVISIONS} times" in spent["error"]
        assert context.ledger.actions("inc-viewer") == []
        resume_incident(graph, context, "inc-viewer", {"decision": "reject", "by": "bob"})


def _model_plan(maxmemory_mb: int) -> dict[str, Any]:
    scale = {"resource": "cache", "maxmemory_mb": maxmemory_mb}
    step = {"tool": "redis_scale_memory", "args": scale, "rationale": "scripted", "expected_effect": "scripted"}
    return {"summary": f"raise maxmemory to {maxmemory_mb} MiB", "steps": [step]}


def test_a_model_re_plans_with_the_change_as_feedback(stack: Stack) -> None:
    diagnosis = {"root_cause": "the dataset filled maxmemory", "evidence": ["used ~ max"], "confidence": 0.8}
    model = ScriptedChatModel.of([
        answer(FinalDiagnosis, diagnosis),
        answer(FinalPlan, _model_plan(64)),
        answer(FinalPlan, _model_plan(128)),  # what the script says after the operator's change
    ])  # fmt: skip
    context = stack.context(reasoner=ModelReasoner(model, inventory=stack.inventory))
    with incident_graph(stack.state_dir) as graph:
        first = start_incident(graph, context, "cache", "inc-model").pending
        assert first is not None and _scale_step(first)["args"]["maxmemory_mb"] == 64
        second = resume_incident(graph, context, "inc-model", _revise("bob", "only 128 MB", first)).pending
        assert second is not None and second["error"] is None and second["plan_backend"] == "scripted"
        assert _scale_step(second)["args"]["maxmemory_mb"] == 128
        assert second["revision"]["note"] == "scripted re-planned with the change as feedback"
        resume_incident(graph, context, "inc-model", {"decision": "reject", "by": "bob"})
    last_prompt = "\n".join(str(message.content) for message in model.prompts[-1])
    assert "The operator reviewed plan 1 (redis_scale_memory" in last_prompt
    assert "asked for this change: only 128 MB" in last_prompt
