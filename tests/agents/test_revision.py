"""The rule-based revision of a plan: the phrasings it understands, and plain words when it does not."""

from __future__ import annotations

from typing import Any

import pytest

from opsgraph.agents.records import Plan, PlanRevision, PlanStep
from opsgraph.agents.runbooks.revision import revise
from opsgraph.tools.catalogue import tools_for
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.spec import ToolSpec

INVENTORY = parse_inventory(
    {
        "resources": [
            {"name": "cache", "kind": "redis", "connection": {"port": 1}},
            {"name": "box", "kind": "container", "environment": "docker", "docker": {"container": "box"}},
        ]
    }
)


def _tools(resource: str) -> dict[str, ToolSpec[Any]]:
    return {spec.name: spec for spec in tools_for(INVENTORY.get(resource)) if spec.mutating}


REDIS = _tools("cache")
SCALE = PlanStep(
    tool="redis_scale_memory",
    args={"resource": "cache", "maxmemory_mb": 48},
    rationale="31 MiB in use",
    expected_effect="about 65 % of maxmemory",
    undo="set it back to 32 MiB",
)
PURGE = PlanStep(tool="redis_memory_purge", args={"resource": "cache"}, rationale="fragmented", expected_effect="rss")
PLAN = Plan(steps=[PURGE, SCALE], summary="raise maxmemory of cache to 48 MiB", backend="runbook")


def _revise(change: str, plan: Plan = PLAN, tools: dict[str, ToolSpec[Any]] = REDIS) -> Plan:
    return revise(plan, PlanRevision(of_plan=1, by="bob", change=change), "cache", tools)


def _calls(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    return [(step.tool, step.args) for step in plan.steps]


@pytest.mark.parametrize("change", ["only 128 MB", "128 MB", "128MB", "make it 128 mib please", "0.125 GB"])
def test_a_size_sets_the_plans_one_megabyte_argument(change: str) -> None:
    revised = _revise(change)
    assert _calls(revised) == [("redis_memory_purge", {"resource": "cache"}), _scale(128)]
    assert revised.revision is not None and not revised.revision.unchanged
    assert (revised.revision.by, revised.revision.of_plan, revised.revision.change) == ("bob", 1, change)
    assert revised.summary.startswith(f"revised at the request of bob ({change!r})")
    assert "maxmemory_mb 48 → 128" in revised.summary
    assert revised.steps[1].undo == SCALE.undo and "operator asked for maxmemory_mb=128" in revised.steps[1].rationale


def _scale(mb: int) -> tuple[str, dict[str, Any]]:
    return ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": mb})


def test_the_rules_do_not_judge_the_value_the_policy_does() -> None:
    assert _calls(_revise("only 10 MB"))[1] == _scale(10)  # below usage: the tool refuses it when run
    assert _calls(_revise("only 4 GB"))[1] == _scale(4096)  # above the ceiling: the policy refuses it


def test_use_instead_replaces_the_plan_with_that_tool() -> None:
    revised = _revise("use redis_memory_purge instead")
    assert _calls(revised) == [("redis_memory_purge", {"resource": "cache"})]  # one step, not the same call twice
    assert "redis_memory_purge instead of redis_memory_purge, redis_scale_memory" in revised.summary
    flush = _revise("use redis_flush instead of redis_scale_memory")
    assert _calls(flush) == [("redis_memory_purge", {"resource": "cache"}), ("redis_flush", {"resource": "cache"})]
    assert flush.steps[1].undo == REDIS["redis_flush"].undo
    negated = _revise("don't run redis_scale_memory, use redis_flush")  # not also "use redis_scale_memory"
    assert _calls(negated) == _calls(flush)


def test_use_instead_carries_the_arguments_the_new_tool_accepts() -> None:
    single = Plan(steps=[SCALE], summary="scale", backend="runbook")
    again = _revise("use redis_scale_memory instead, 96 MB", plan=single)
    assert _calls(again) == [_scale(96)]
    needs = _revise("use redis_scale_clients instead", plan=single)  # maxclients: nothing to take it from
    assert needs.steps == single.steps and needs.revision is not None and needs.revision.unchanged
    assert "redis_scale_clients needs maxclients" in needs.revision.note


def test_skip_drops_the_step() -> None:
    for change in ("skip redis_memory_purge", "drop the redis_memory_purge", "don't run redis_memory_purge"):
        assert _calls(_revise(change)) == [_scale(48)], change


def test_a_change_it_does_not_understand_keeps_the_steps_and_says_what_it_understands() -> None:
    revised = _revise("be gentle with it")
    assert revised.steps == PLAN.steps and revised.summary == PLAN.summary  # nothing nests on a second try
    assert revised.revision is not None and revised.revision.unchanged
    note = revised.revision.note
    assert note.startswith("the rule-based backend did not understand the change 'be gentle with it'")
    assert "'use TOOL instead'" in note and "'only N MB'" in note and "'skip TOOL'" in note
    assert "redis_scale_memory" in note and note.endswith("Plan 1 stands unchanged")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("use redis_purge instead", "redis_purge is not a tool for this resource"),
        ("skip redis_flush", "the plan has no redis_flush step to skip"),
        ("use redis_flush instead of redis_restart", "the plan has no redis_restart step to replace"),
        ("instead of redis_scale_memory", "use which tool?"),
        ("64 MB or 128 MB", "more than one size"),
        ("1.3 MB", "a whole number of MB"),
        ("skip redis_memory_purge and redis_scale_memory", "it names redis_scale_memory outside 'use"),
        ("skip redis_memory_purge, skip redis_scale_memory", "would leave no step to run; to run nothing, reject"),
        ("only 48 MB", "leaves the steps as they were"),
    ],
)
def test_what_cannot_be_applied_leaves_the_steps_and_says_why(change: str, why: str) -> None:
    revised = _revise(change)
    assert revised.revision is not None
    assert revised.steps == PLAN.steps and revised.revision.unchanged
    assert why in revised.revision.note


def test_a_size_with_two_candidate_arguments_is_not_guessed() -> None:
    two = Plan(
        steps=[SCALE, SCALE.model_copy(update={"args": {"resource": "cache", "maxmemory_mb": 64}})],
        summary="",
        backend="x",
    )
    revised = _revise("only 128 MB", plan=two)
    assert revised.steps == two.steps
    assert revised.revision is not None and "more than one argument takes a size in MB" in revised.revision.note


def test_an_optional_megabyte_argument_counts_too() -> None:
    update = PlanStep(tool="docker_update", args={"resource": "box", "cpus": 1.0}, rationale="r", expected_effect="e")
    plan = Plan(steps=[update], summary="more cpu", backend="runbook")
    revised = revise(plan, PlanRevision(of_plan=2, by="ann", change="512MB"), "box", _tools("box"))
    assert _calls(revised) == [("docker_update", {"resource": "box", "cpus": 1.0, "memory_mb": 512})]


GCP = parse_inventory(
    {
        "resources": [
            {"name": "sessions", "kind": "gcp_redis", "environment": "gcp",
             "gcp": {"project": "my-project", "region": "us-central1"}},
        ]
    }
)  # fmt: skip
MEMORYSTORE = {spec.name: spec for spec in tools_for(GCP.get("sessions")) if spec.mutating}
SCALE_GB = PlanStep(
    tool="gcp_redis_scale_memory",
    args={"resource": "sessions", "memory_size_gb": 3},
    rationale="97 % of 1 GB in use",
    expected_effect="about 32 %",
)
GB_PLAN = Plan(steps=[SCALE_GB], summary="scale sessions to 3 GB", backend="runbook")


def test_a_size_in_gb_sets_a_memorystore_size_and_a_fraction_of_a_gb_is_not_rounded() -> None:
    revised = revise(GB_PLAN, PlanRevision(of_plan=1, by="bob", change="only 2 GB"), "sessions", MEMORYSTORE)
    assert _calls(revised) == [("gcp_redis_scale_memory", {"resource": "sessions", "memory_size_gb": 2})]
    assert "memory_size_gb 3 → 2" in revised.summary
    kept = revise(GB_PLAN, PlanRevision(of_plan=1, by="bob", change="only 1500 MB"), "sessions", MEMORYSTORE)
    assert _calls(kept) == _calls(GB_PLAN)
    assert kept.revision is not None and kept.revision.unchanged and "takes whole GB" in str(kept.revision.note)
