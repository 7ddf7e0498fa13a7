"""Caps on unattended action (issue 10, finding 6): per-resource and global budgets, the crash-loop rule,
holds that stay until a human resumes, dependents grouped under the root incident, modes."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import (
    ScriptedReasoner,
    Stack,
    redis_resource,
    run_unattended,
    running_stack,
    shop_resources,
    stop,
    wait_for,
    watching,
)

from opsgraph.agents.records import PlanStep
from opsgraph.graph.control import Controls
from opsgraph.graph.ledger import Ledger
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import StepVerdict
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import InventoryError, parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health


def _results(ledger: Ledger, tool: str) -> list[dict[str, Any]]:
    return [
        row
        for incident in ledger.incidents(limit=500)
        for row in ledger.actions(incident["incident_id"])
        if row["phase"] == "result" and row["tool"] == tool
    ]


def _scale(mb: int) -> dict[str, Any]:
    return {"tool": "redis_scale_memory", "args": {"resource": "cache", "maxmemory_mb": mb}}


class RedisKiller:
    """A crash-looping Redis: a test thread SIGKILLs the cache each time it is back (`killed`: the pids)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.killed: list[int] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="redis-killer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.is_set():
            [status] = [s for s in self.stack.local.status() if s.name == "cache"]
            if status.running and status.pid is not None:
                os.kill(status.pid, signal.SIGKILL)
                self.killed.append(status.pid)
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=30)


@contextmanager
def killing_redis_whenever_it_answers(stack: Stack) -> Iterator[RedisKiller]:
    killer = RedisKiller(stack)
    try:
        yield killer
    finally:
        killer.stop()


def test_a_crash_looping_redis_gets_one_restart_then_one_escalation_that_holds(tmp_path: Path) -> None:
    """Redis killed each time it is back: the restart is not repeated, one escalation holds the cache until a
    human resumes it, and the app behind it opens no incident of its own (each said once in the log)."""
    with running_stack(tmp_path, shop_resources(edge=False)) as stack:
        ledger = stack.context().ledger
        log = tmp_path / "watch.log"
        with killing_redis_whenever_it_answers(stack) as killer, watching(stack, "none", "--cooldown", "0") as watcher:
            wait_for(lambda: "cache is held by opsgraph" in log.read_text(), "the cache to be held", timeout_s=120)
            time.sleep(1.5)  # several probe intervals: nothing new may open, restart or be said again
            cache = [row for row in ledger.incidents() if row["resource"] == "cache"]
            assert [row["status"] for row in cache] == ["escalated"], cache
            record = ledger.incident(cache[0]["incident_id"])
            assert record is not None and "crash loop" in record["report"]["outcome_detail"]
            assert 1 <= len(_results(ledger, "redis_restart")) <= 3  # at most the cap; in fact one
            assert len(killer.killed) >= 2  # down from the start, and down again after the restart brought it back
            assert [row for row in ledger.incidents() if row["resource"] == "shop"] == []
            text = log.read_text()
            assert text.count("cache is held by opsgraph") == 1, text
            assert text.count(f"grouped under {cache[0]['incident_id']} (cache)") == 1, text
            killer.stop()
            resumed = stack.opsgraph("resume", "--resource", "cache", "--by", "zoe")
            assert resumed.returncode == 0, resumed.stderr
            assert "resumed by zoe" in resumed.stdout
            wait_for(
                lambda: [r for r in ledger.incidents() if r["resource"] == "cache" and r["status"] == "resolved"],
                "the resumed cache to be restarted and fixed",
                timeout_s=120,
            )
            assert len(_results(ledger, "redis_restart")) >= 2  # the human's resume is a fresh start
            stop(watcher, stack)


@pytest.fixture
def full_cache(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))
        yield stack


def test_a_step_beyond_the_resource_cap_is_refused_before_it_runs_and_holds_the_resource(full_cache: Stack) -> None:
    stack = full_cache
    reasoner = ScriptedReasoner([_scale(40), _scale(48), _scale(56)])
    result = run_unattended(
        stack.inventory_path, stack.state_dir, "cache", "inc-capped", reasoner=reasoner, resource_action_cap=2
    )
    ledger = stack.context().ledger
    intents = [row for row in ledger.actions("inc-capped") if row["phase"] == "intent"]
    assert [row["args"] for row in intents] == [
        '{"maxmemory_mb": 40, "resource": "cache"}',
        '{"maxmemory_mb": 48, "resource": "cache"}',
    ]  # the third never started
    assert result.values["outcome"] == "escalated"
    assert "action cap: 2 disruptive actions on cache" in result.values["outcome_detail"]
    assert result.values["actions"][-1]["status"] == "capped"
    hold = Controls(ledger).stop_for("cache")
    assert hold is not None and hold.state == "held" and hold.incident_id == "inc-capped"

    fill_redis_memory(stack.inventory.get("cache"))  # failing again, within the window
    again = run_unattended(stack.inventory_path, stack.state_dir, "cache", "inc-after", reasoner=reasoner)
    assert again.values["outcome"] == "held"  # no second escalation while the first one stands
    assert ledger.incident("inc-after") is None
    assert Controls(ledger).resume("zoe", "cache") is not None
    freed = run_unattended(
        stack.inventory_path, stack.state_dir, "cache", "inc-freed", reasoner=ScriptedReasoner([_scale(64)])
    )
    assert freed.values["outcome"] == "resolved"


def _kill_cache(stack: Stack) -> None:
    pid = stack.local.status()[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: probe(stack.inventory.get("cache")).health is not Health.HEALTHY, "the cache to be down")


def test_the_same_restart_again_within_the_window_is_a_crash_loop(tmp_path: Path) -> None:
    restart = {"tool": "redis_restart", "args": {"resource": "cache"}}
    with running_stack(tmp_path, [redis_resource()]) as stack:
        ledger = stack.context().ledger
        _kill_cache(stack)
        fixed = run_unattended(
            stack.inventory_path, stack.state_dir, "cache", "inc-earlier", reasoner=ScriptedReasoner([restart])
        )
        assert fixed.values["outcome"] == "resolved"
        _kill_cache(stack)  # down again within the window: the restart did not stick
        result = run_unattended(
            stack.inventory_path, stack.state_dir, "cache", "inc-again", reasoner=ScriptedReasoner([restart])
        )
        assert result.values["outcome"] == "escalated"
        assert "crash loop: redis_restart already ran on cache" in result.values["outcome_detail"]
        assert "inc-earlier" in result.values["outcome_detail"]
        assert [row for row in ledger.actions("inc-again") if row["phase"] == "intent"] == []
        hold = Controls(ledger).stop_for("cache")
        assert hold is not None and hold.incident_id == "inc-again"


def test_the_global_budget_refuses_mutating_steps_but_holds_nothing(full_cache: Stack) -> None:
    stack = full_cache
    purge = {"tool": "redis_memory_purge", "args": {"resource": "cache"}}
    result = run_unattended(
        stack.inventory_path, stack.state_dir, "cache", "inc-budget",
        reasoner=ScriptedReasoner([purge, _scale(64)]), global_action_cap=1,
    )  # fmt: skip
    ledger = stack.context().ledger
    assert [row["tool"] for row in ledger.actions("inc-budget") if row["phase"] == "intent"] == ["redis_memory_purge"]
    assert result.values["outcome"] == "escalated"
    assert "global action budget spent: 1 mutating actions" in result.values["outcome_detail"]
    assert Controls(ledger).stop_for("cache") is None  # the budget refills with time: no hold


def test_the_root_incident_lists_the_dependents_grouped_under_it(full_cache: Stack) -> None:
    stack = full_cache
    Controls(stack.context().ledger).group("inc-root", "shop", "http_failed")
    result = run_unattended(
        stack.inventory_path, stack.state_dir, "cache", "inc-root", reasoner=ScriptedReasoner([_scale(64)])
    )
    assert result.values["outcome"] == "resolved"
    assert any("grouped dependents: shop (http_failed)" in e["event"] for e in result.values["timeline"])
    assert result.values["report"]["grouped_dependents"] == ["shop (http_failed)"]


# ---- modes (policy only: no server needed)


def _inventory(**cache: Any) -> Any:
    return parse_inventory({"version": 1, "resources": [{**redis_resource(), **cache}]})


def _verdict(mode: ApprovalMode, tool: str, cache: dict[str, Any]) -> StepVerdict:
    args: dict[str, Any] = {"resource": "cache"}
    if tool == "redis_scale_memory":
        args["maxmemory_mb"] = 64
    step = PlanStep(tool=tool, args=args, rationale="t", expected_effect="t")
    return review_step(0, step, _inventory(**cache), {"cache"}, mode).verdict


@pytest.mark.parametrize(
    ("mode", "resource_mode", "tool", "expected"),
    [
        (ApprovalMode.NONE, "read-only", "redis_scale_memory", StepVerdict.REFUSE),
        (ApprovalMode.NONE, "read-only", "redis_info", StepVerdict.RUN),  # diagnosis goes on
        (ApprovalMode.NONE, "review", "redis_memory_purge", StepVerdict.ASK),
        (ApprovalMode.ALL, "autonomous", "redis_memory_purge", StepVerdict.ASK),  # a resource only tightens
        (ApprovalMode.NONE, "autonomous", "redis_scale_memory", StepVerdict.RUN),
        (ApprovalMode.READ_ONLY, None, "redis_memory_purge", StepVerdict.REFUSE),
        (ApprovalMode.READ_ONLY, None, "redis_info", StepVerdict.RUN),
    ],
)
def test_modes_map_onto_the_approval_setting_and_the_stricter_wins(
    mode: ApprovalMode, resource_mode: str | None, tool: str, expected: StepVerdict
) -> None:
    cache = {"mode": resource_mode} if resource_mode else {}
    assert _verdict(mode, tool, cache) is expected


def test_depends_on_must_name_another_resource() -> None:
    with pytest.raises(InventoryError, match="depends_on names 'nowhere'"):
        _inventory(depends_on=["nowhere"])
    with pytest.raises(InventoryError, match="mode"):
        _inventory(mode="yolo")


def test_a_fault_back_within_the_cooldown_is_logged_once_with_why(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, watching(stack, "risky", "--cooldown", "60") as watcher:
        ledger = stack.context().ledger
        log = tmp_path / "watch.log"
        fill_redis_memory(stack.inventory.get("cache"))
        [first] = wait_for(lambda: ledger.ids_with_status("awaiting_approval"), "an incident awaiting approval")
        rejected = stack.opsgraph("reject", first, "--by", "hank")
        assert rejected.returncode == 0, rejected.stderr
        wait_for(lambda: "after its last incident closed" in log.read_text(), "the cooldown to be reported")
        time.sleep(1.0)  # several probe intervals: the fault stands, the line is not repeated
        assert log.read_text().count("after its last incident closed") == 1
        assert "(cooldown 60 s)" in log.read_text()
        assert [row["incident_id"] for row in ledger.incidents()] == [first]
        stop(watcher, stack)
