"""The incident graph end to end against a real private redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ScriptedReasoner, Stack, redis_resource, running_stack

from opsgraph.agents.records import Diagnosis, Incident, Plan
from opsgraph.graph.runtime import incident_graph, resume_incident, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        yield running


def test_memory_pressure_is_detected_approved_fixed_and_verified(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache)
    assert probe(cache).health is Health.FAILED

    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        paused = start_incident(graph, context, "cache", "inc-test-1")
        request = paused.pending
        assert request is not None, paused.values.get("outcome_detail")
        assert request["type"] == "approval"
        assert [s["tool"] for s in request["steps"]] == ["redis_scale_memory"]
        assert request["steps"][0]["risk"] == "disruptive"
        assert probe(cache).health is Health.FAILED  # nothing ran before the approval

        answer = {"decision": "approve", "by": "alice", "digests": [request["steps"][0]["digest"]]}
        done = resume_incident(graph, context, "inc-test-1", answer)

    report = done.report
    assert report is not None
    assert report["resolved"] is True
    assert report["actions"][0]["status"] == "ok"
    assert report["approvals"][0]["by"] == "alice"
    assert report["mttr_s"] is not None and report["mttr_s"] > 0
    assert report["metrics_before"]["memory_used_pct"] >= 95
    assert report["metrics_after"]["memory_used_pct"] < 85
    assert "maxmemory" in report["root_cause"]
    assert probe(cache).health is Health.HEALTHY
    row = stack.context().ledger.incident("inc-test-1")
    assert row is not None and row["status"] == "resolved"


def test_healthy_resource_ends_without_an_incident(stack: Stack) -> None:
    with incident_graph(stack.state_dir) as graph:
        result = start_incident(graph, stack.context(), "cache", "inc-healthy")
    assert result.pending is None
    assert result.values["outcome"] == "healthy"
    assert stack.context().ledger.incident("inc-healthy") is None


def test_rejection_leaves_the_resource_untouched(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache)
    before = redis_client(cache).config_get("maxmemory")
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        start_incident(graph, context, "cache", "inc-reject")
        done = resume_incident(graph, context, "inc-reject", {"decision": "reject", "by": "bob", "comment": "no"})
    assert done.report is not None and done.report["outcome"] == "rejected"
    assert done.report["actions"] == []
    assert redis_client(cache).config_get("maxmemory") == before


def test_malformed_or_mismatched_answers_ask_again(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        start_incident(graph, context, "cache", "inc-ask")
        again = resume_incident(graph, context, "inc-ask", {"decision": "sure!"})
        assert again.pending is not None and "not understood" in again.pending["error"]
        again = resume_incident(graph, context, "inc-ask", {"decision": "approve", "by": "x", "digests": ["f00"]})
        assert again.pending is not None and "do not match" in again.pending["error"]
        assert context.ledger.approvals("inc-ask") == []
        assert context.ledger.actions("inc-ask") == []
        done = resume_incident(graph, context, "inc-ask", {"decision": "approve", "by": "carol"})
    assert done.report is not None and done.report["resolved"] is True


@pytest.mark.parametrize("approval", ["risky", "all"])
def test_destructive_step_never_runs_without_a_human(tmp_path: Path, approval: str) -> None:
    with running_stack(tmp_path, [redis_resource(max_risk="destructive")]) as stack:
        cache = stack.inventory.get("cache")
        fill_redis_memory(cache)
        keys = redis_client(cache).dbsize()
        flush = ScriptedReasoner([{"tool": "redis_flush", "args": {"resource": "cache"}}])
        context = stack.context(approval=approval, reasoner=flush)
        with incident_graph(stack.state_dir) as graph:
            paused = start_incident(graph, context, "cache", "inc-flush")
            assert paused.pending is not None
            assert paused.pending["steps"][0]["risk"] == "destructive"
            assert redis_client(cache).dbsize() == keys
            assert context.ledger.actions("inc-flush") == []
            done = resume_incident(graph, context, "inc-flush", {"decision": "reject", "by": "dave"})
        assert done.report is not None and done.report["outcome"] == "rejected"
        assert redis_client(cache).dbsize() == keys
        assert context.ledger.actions("inc-flush") == []


def test_unattended_mode_still_refuses_what_policy_forbids(stack: Stack) -> None:
    cache = stack.inventory.get("cache")  # default policy: max_risk disruptive
    fill_redis_memory(cache)
    keys = redis_client(cache).dbsize()
    context = stack.context(
        approval="none",
        reasoner=ScriptedReasoner(
            [
                {"tool": "redis_flush", "args": {"resource": "cache"}},
            ]
        ),
    )
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-none")
    assert done.pending is None
    report = done.report
    assert report is not None
    # Refused twice (the backend re-plans once with the reasons), then the runbook's plan ran instead.
    [fallback] = report["fallbacks"]
    assert "allows at most disruptive" in fallback
    assert [a["tool"] for a in report["actions"]][-1] == "redis_scale_memory"  # after a purge if fragmented
    assert "redis_flush" not in {a["tool"] for a in report["actions"]}
    assert report["resolved"] is True
    assert redis_client(cache).dbsize() == keys  # nothing was flushed


def test_unknown_tool_from_a_backend_is_refused(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    context = stack.context(
        approval="none",
        reasoner=ScriptedReasoner(
            [
                {"tool": "redis_info", "args": {"resource": "cache"}},
                {"tool": "run_shell", "args": {"resource": "cache", "command": "redis-cli flushall"}},
            ]
        ),
    )
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-unknown")
    report = done.report
    assert report is not None
    assert "not in the catalogue" in report["fallbacks"][0]
    ran = {row["tool"] for row in context.ledger.actions("inc-unknown")}
    assert ran <= {"redis_memory_purge", "redis_scale_memory"}  # the runbook's; no part of the scripted plan


def test_the_runbook_refusal_is_final(stack: Stack) -> None:
    """A refused runbook plan escalates: re-asking a rule-based backend gives the same answer."""
    fill_redis_memory(stack.inventory.get("cache"))
    flush_runbook = ScriptedReasoner([{"tool": "redis_flush", "args": {"resource": "cache"}}])
    flush_runbook.name = "runbook"
    context = stack.context(approval="none", reasoner=flush_runbook)
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-final")
    assert done.report is not None and done.report["outcome"] == "escalated"
    assert "allows at most disruptive" in done.report["outcome_detail"]
    assert context.ledger.actions("inc-final") == []


def test_a_plan_that_did_not_fix_it_is_never_run_again(stack: Stack) -> None:
    """The retry gets the failure as feedback; a backend that can only repeat itself escalates."""
    fill_redis_memory(stack.inventory.get("cache"))
    reasoner = ScriptedReasoner([{"tool": "redis_memory_purge", "args": {"resource": "cache"}}])
    context = stack.context(approval="none", verify_deadline_s=0.3, max_retries=2, reasoner=reasoner)
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-retry")
    report = done.report
    assert report is not None
    assert report["outcome"] == "escalated"
    assert "already ran and did not fix it" in report["outcome_detail"]
    assert report["attempts"] == 2
    assert [a["tool"] for a in report["actions"]] == ["redis_memory_purge"]


class TakingTurns(ScriptedReasoner):
    """Proposes each plan of a list in turn (cycling), and records the feedback it was given."""

    def __init__(self, plans: list[list[dict[str, Any]]]) -> None:
        super().__init__(plans[0])
        self.plans = plans
        self.feedback: list[str | None] = []

    def plan(self, incident: Incident, diagnosis: Diagnosis, resource: Any, read: Any, feedback: str | None) -> Plan:
        self.steps = self.plans[len(self.feedback) % len(self.plans)]
        self.feedback.append(feedback)
        return super().plan(incident, diagnosis, resource, read, feedback)


def test_failed_fix_retries_with_a_different_plan_then_escalates(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    purge = [{"tool": "redis_memory_purge", "args": {"resource": "cache"}}]
    kill = [{"tool": "redis_kill_idle_clients", "args": {"resource": "cache", "min_idle_s": 3600}}]
    reasoner = TakingTurns([purge, kill])
    context = stack.context(approval="none", verify_deadline_s=0.3, max_retries=2, reasoner=reasoner)
    with incident_graph(stack.state_dir) as graph:
        done = start_incident(graph, context, "cache", "inc-turns")
    report = done.report
    assert report is not None
    assert report["outcome"] == "escalated"
    assert [a["tool"] for a in report["actions"]] == ["redis_memory_purge", "redis_kill_idle_clients"]
    assert report["attempts"] == 3  # the third plan would have repeated the first
    assert reasoner.feedback[0] is None
    assert reasoner.feedback[1] is not None and "after plan 1 the resource is still unhealthy" in reasoner.feedback[1]
