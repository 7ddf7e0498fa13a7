"""Approvals say who, expire, are re-checked against the target, and obey roles — on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ScriptedReasoner, Stack, redis_resource, running_stack, wait_for

from opsgraph.graph.approvals import Role, RolesError, parse_roles, refusal
from opsgraph.graph.runtime import incident_graph, resume_incident, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.probes import probe
from opsgraph.tools.risk import Risk
from opsgraph.tools.snapshot import Health

ROLES = "alice=admin,bob=operator,carol=viewer"
FLUSH = ScriptedReasoner([{"tool": "redis_flush", "args": {"resource": "cache"}}])


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.delenv("OPSGRAPH_ROLES", raising=False)
    monkeypatch.delenv("OPSGRAPH_APPROVAL_TTL_S", raising=False)
    with running_stack(tmp_path, [redis_resource(max_risk="destructive")]) as running:
        fill_redis_memory(running.inventory.get("cache"))
        yield running


def _approve(by: str, request: dict[str, Any]) -> dict[str, Any]:
    return {"decision": "approve", "by": by, "digests": [step["digest"] for step in request["steps"]]}


def _maxmemory(stack: Stack) -> str:
    return str(redis_client(stack.inventory.get("cache")).config_get("maxmemory")["maxmemory"])


# --- roles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "decision", "risk", "allowed"),
    [
        ("viewer", "approve", Risk.SAFE, False),
        ("viewer", "approve", Risk.DISRUPTIVE, False),
        ("viewer", "reject", Risk.DISRUPTIVE, False),
        ("operator", "approve", Risk.SAFE, True),
        ("operator", "approve", Risk.DISRUPTIVE, True),
        ("operator", "approve", Risk.DESTRUCTIVE, False),
        ("operator", "reject", Risk.DESTRUCTIVE, True),
        ("admin", "approve", Risk.DESTRUCTIVE, True),
        ("admin", "reject", Risk.DESTRUCTIVE, True),
    ],
)
def test_role_matrix(role: str, decision: str, risk: Risk, allowed: bool) -> None:
    roles = {"pat": Role(role), "root": Role.ADMIN}
    why = refusal(roles, "pat", decision, risk)
    assert (why is None) is allowed, why
    if not allowed:
        assert why is not None and f"pat is {role}" in why and "root (admin)" in why


def test_unknown_name_may_do_nothing_when_roles_are_set_and_anyone_when_unset() -> None:
    roles = parse_roles(ROLES)
    assert roles == {"alice": Role.ADMIN, "bob": Role.OPERATOR, "carol": Role.VIEWER}
    why = refusal(roles, "mallory", "reject", Risk.DISRUPTIVE)
    assert why is not None and "mallory has no role" in why and "alice (admin), bob (operator)" in why
    assert parse_roles(None) is None and parse_roles("  ") is None
    assert refusal(None, "mallory", "approve", Risk.DESTRUCTIVE) is None


@pytest.mark.parametrize("text", ["alice", "alice=root", "=admin", "alice=admin,alice=viewer"])
def test_malformed_roles_name_the_entry(text: str) -> None:
    with pytest.raises(RolesError, match="OPSGRAPH_ROLES"):
        parse_roles(text)


def test_roles_decide_who_may_approve_in_the_graph(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_ROLES", ROLES)
    context = stack.context(reasoner=FLUSH)
    keys = redis_client(stack.inventory.get("cache")).dbsize()
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-roles").pending
        assert request is not None and request["steps"][0]["risk"] == "destructive"
        refusals = {
            "carol": "carol is viewer and may not approve a destructive step; who may: alice (admin)",
            "bob": "bob is operator and may not approve a destructive step; who may: alice (admin)",
            "mallory": "mallory has no role in OPSGRAPH_ROLES and may not approve a destructive step",
        }
        for by, why in refusals.items():
            again = resume_incident(graph, context, "inc-roles", _approve(by, request))
            assert again.pending is not None and why in again.pending["error"]
        for by in ("carol", "mallory"):  # nor may they close it
            again = resume_incident(graph, context, "inc-roles", {"decision": "reject", "by": by})
            assert again.pending is not None and f"{by} " in again.pending["error"]
            assert "may not reject this plan; who may: alice (admin), bob (operator)" in again.pending["error"]
        assert context.ledger.approvals("inc-roles") == []  # refused answers are not decisions
        assert context.ledger.actions("inc-roles") == []
        assert redis_client(stack.inventory.get("cache")).dbsize() == keys
        row = context.ledger.incident("inc-roles")
        assert row is not None and row["status"] == "awaiting_approval"
        done = resume_incident(graph, context, "inc-roles", _approve("alice", request))
    assert done.report is not None
    assert [a["status"] for a in done.report["actions"]] == ["ok"]
    assert [(a["by"], a["decision"]) for a in done.report["approvals"]] == [("alice", "approve")]
    assert any("answer refused: carol is viewer" in e["event"] for e in done.report["timeline"])


def test_an_operator_approves_a_disruptive_step_and_may_reject(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_ROLES", ROLES)
    context = stack.context()  # the runbook: redis_scale_memory, disruptive
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-operator").pending
        assert request is not None and request["steps"][0]["risk"] == "disruptive"
        again = resume_incident(graph, context, "inc-operator", _approve("carol", request))
        assert again.pending is not None and "carol is viewer" in again.pending["error"]
        done = resume_incident(graph, context, "inc-operator", _approve("bob", request))
    assert done.report is not None and done.report["resolved"] is True
    assert done.report["approvals"][0]["by"] == "bob"

    fill_redis_memory(stack.inventory.get("cache"))
    before = _maxmemory(stack)
    with incident_graph(stack.state_dir) as graph:
        start_incident(graph, context, "cache", "inc-operator-no")
        rejected = resume_incident(graph, context, "inc-operator-no", {"decision": "reject", "by": "bob"})
    assert rejected.report is not None and rejected.report["outcome"] == "rejected"
    assert _maxmemory(stack) == before


def test_without_roles_anyone_may_approve_as_before(stack: Stack) -> None:
    context = stack.context(reasoner=FLUSH)
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-open").pending
        assert request is not None
        done = resume_incident(graph, context, "inc-open", _approve("anyone-at-all", request))
    assert done.report is not None and [a["status"] for a in done.report["actions"]] == ["ok"]
    assert done.report["approvals"][0]["by"] == "anyone-at-all"


def test_malformed_roles_setting_lets_nobody_approve(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_ROLES", "alice=root")
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-typo").pending
        assert request is not None
        again = resume_incident(graph, context, "inc-typo", _approve("alice", request))
    assert again.pending is not None
    assert (
        "OPSGRAPH_ROLES entry 'alice=root'" in again.pending["error"] and "nobody may decide" in again.pending["error"]
    )
    assert context.ledger.actions("inc-typo") == []


# --- expiry ------------------------------------------------------------------------------------------


def test_an_expired_request_is_asked_again_and_then_approved(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_APPROVAL_TTL_S", "0.05")
    context = stack.context()
    before = _maxmemory(stack)
    with incident_graph(stack.state_dir) as graph:
        first = start_incident(graph, context, "cache", "inc-ttl").pending
        assert first is not None and first["expires_at"] == pytest.approx(first["asked_at"] + 0.05)
        # A refusal that is not about time keeps the request's age: asked_at survives the node's re-runs.
        malformed = resume_incident(graph, context, "inc-ttl", {"decision": "maybe"}).pending
        assert malformed is not None and malformed["asked_at"] == first["asked_at"]

        wait_for(lambda: time.time() > first["expires_at"], "the request to expire", timeout_s=5)
        late = resume_incident(graph, context, "inc-ttl", _approve("erin", first))
        fresh = late.pending
        assert fresh is not None and "expired, asked again" in fresh["error"]
        assert fresh["asked_at"] > first["asked_at"]
        assert [s["digest"] for s in fresh["steps"]] == [s["digest"] for s in first["steps"]]
        assert context.ledger.approvals("inc-ttl") == []
        assert context.ledger.actions("inc-ttl") == []
        assert _maxmemory(stack) == before

        monkeypatch.setenv("OPSGRAPH_APPROVAL_TTL_S", "3600")
        done = resume_incident(graph, context, "inc-ttl", _approve("erin", fresh))
    assert done.report is not None and done.report["resolved"] is True
    assert _maxmemory(stack) != before


def test_a_rejection_stands_however_late(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_APPROVAL_TTL_S", "0.05")
    context = stack.context()
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-late-no").pending
        assert request is not None
        wait_for(lambda: time.time() > request["expires_at"], "the request to expire", timeout_s=5)
        done = resume_incident(graph, context, "inc-late-no", {"decision": "reject", "by": "erin"})
    assert done.report is not None and done.report["outcome"] == "rejected"


# --- re-check before the step runs ---------------------------------------------------------------------


def test_a_resource_that_recovered_before_the_approval_skips_the_step(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    context = stack.context()
    before = _maxmemory(stack)
    with incident_graph(stack.state_dir) as graph:
        request = start_incident(graph, context, "cache", "inc-recovered").pending
        assert request is not None and request["steps"][0]["tool"] == "redis_scale_memory"
        redis_client(cache).flushall()  # the pressure went away on its own while the request waited
        wait_for(lambda: probe(cache).health is Health.HEALTHY, "the cache to be healthy again")
        done = resume_incident(graph, context, "inc-recovered", _approve("erin", request))
    assert done.report is not None
    # The runbook may put an unattended redis_memory_purge first (fragmented allocator): only the approved
    # step is re-checked.
    [action] = [a for a in done.report["actions"] if a["tool"] == "redis_scale_memory"]
    assert action["status"] == "skipped"
    assert action["error"] == "resource cache is healthy now; the approved step is no longer needed"
    assert _maxmemory(stack) == before  # not run
    rows = [row for row in context.ledger.actions("inc-recovered") if row["tool"] == "redis_scale_memory"]
    assert rows == []  # no intent, no result: nothing touched the target
    assert done.report["approvals"][0]["by"] == "erin"  # the approval itself is on record
