"""The chat's service on a real Redis: what waits, answering it once under a race, and the history of actions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Stack, redis_resource, running_stack

from opsgraph.chat.service import AnswerRefused, ChatService
from opsgraph.graph.runtime import RunResult
from opsgraph.tools.faults import fill_redis_memory


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        fill_redis_memory(running.inventory.get("cache"))
        yield running


def test_two_operators_answering_at_once_run_the_plan_once(stack: Stack) -> None:
    chat = ChatService(stack.context())
    paused = chat.start_fix("cache", chat.new_incident_id("cache"))
    assert paused.pending is not None
    [pending] = chat.pending()
    assert pending.incident_id == paused.incident_id and chat.open_incidents()[0]["status"] == "awaiting_approval"
    outcomes: list[RunResult | AnswerRefused] = []
    start = threading.Barrier(2)

    def operator(name: str) -> None:
        start.wait()
        try:
            outcomes.append(chat.answer(pending, {"decision": "approve", "by": name, "digests": pending.digests}))
        except AnswerRefused as refused:
            outcomes.append(refused)

    threads = [threading.Thread(target=operator, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    [result] = [o for o in outcomes if isinstance(o, RunResult)]
    [refused] = [o for o in outcomes if isinstance(o, AnswerRefused)]
    assert result.values["outcome"] == "resolved"
    assert "your answer was not applied" in str(refused)
    ran = [a for a in chat.ledger.actions(pending.incident_id) if a["phase"] == "result"]
    assert [a["tool"] for a in ran].count("redis_scale_memory") == 1  # (a safe purge may run unasked before it)
    assert [a["decided_by"] for a in chat.ledger.approvals(pending.incident_id)] in (["alice"], ["bob"])
    assert chat.pending() == [] and chat.open_incidents() == []
    record = chat.last_incident()
    assert record is not None and record["status"] == "resolved" and record["actions"]


def test_history_is_the_actions_started_in_the_window(stack: Stack) -> None:
    chat = ChatService(stack.context(approval="none"))
    before = time.time()
    chat.start_fix("cache", chat.new_incident_id("cache"))
    after = time.time()
    rows = chat.actions_between(before, after)
    assert "redis_scale_memory" in [row["tool"] for row in rows] and {row["resource"] for row in rows} == {"cache"}
    assert chat.actions_between(after, after + 60) == [] and chat.actions_between(before - 60, before) == []


def test_an_unknown_resource_is_refused_with_the_names(stack: Stack) -> None:
    with pytest.raises(KeyError, match="no resource named 'cahce'"):
        ChatService(stack.context()).new_incident_id("cahce")
