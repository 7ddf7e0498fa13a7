"""Lifecycle tools for local processes: stats from /proc, logs, restart — on real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Stack, redis_resource, running_stack

from opsgraph.agents.records import PlanStep
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import StepVerdict
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.runner import run_tool
from opsgraph.tools.spec import ToolContext


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        yield running


def tools(stack: Stack) -> ToolContext:
    return ToolContext(inventory=stack.inventory, state_dir=stack.state_dir)


def test_stats_come_from_the_live_process(stack: Stack) -> None:
    outcome = run_tool("process_stats", {"resource": "cache"}, tools(stack), 5)
    assert outcome.ok, outcome.error
    stats = outcome.output
    assert stats is not None
    assert stats["pid"] == stack.local.status()[0].pid
    assert stats["running"] is True and stats["rss_mb"] > 0 and stats["threads"] >= 1 and stats["open_fds"] > 0


def test_logs_and_restart(stack: Stack) -> None:
    logs = run_tool("process_logs", {"resource": "cache", "lines": 5}, tools(stack), 5)
    assert logs.ok and logs.output is not None and 0 < len(logs.output["lines"]) <= 5
    before = stack.local.status()[0].pid
    restarted = run_tool("process_restart", {"resource": "cache"}, tools(stack), 30)
    assert restarted.ok and restarted.output is not None and restarted.output["pid"] != before
    assert stack.local.status()[0].running


def test_stats_of_a_stopped_process_is_an_error_not_a_crash(stack: Stack) -> None:
    stack.local.down()
    outcome = run_tool("process_stats", {"resource": "cache"}, tools(stack), 5)
    assert not outcome.ok and "not running" in str(outcome.error)


def test_process_tools_only_act_on_local_resources() -> None:
    inventory = parse_inventory(
        {"resources": [{"name": "remote", "kind": "redis", "environment": "docker", "connection": {"port": 1}}]}
    )
    step = PlanStep(tool="process_restart", args={"resource": "remote"}, rationale="t", expected_effect="t")
    reviewed = review_step(0, step, inventory, {"remote"}, ApprovalMode.NONE)
    assert reviewed.verdict is StepVerdict.REFUSE and "acts on local resources" in reviewed.reason
