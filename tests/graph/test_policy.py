"""The policy engine classifies every step in code: refuse, ask a human, or run."""

import pytest

from opsgraph.agents.records import PlanStep
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import ReviewedStep, StepVerdict
from opsgraph.tools.inventory import parse_inventory

INVENTORY = parse_inventory(
    {
        "resources": [
            {"name": "cache", "kind": "redis", "connection": {"port": 1}, "policy": {"max_memory_mb": 256}},
            {"name": "open-cache", "kind": "redis", "connection": {"port": 2}, "policy": {"max_risk": "destructive"}},
            {"name": "db", "kind": "postgres", "connection": {"port": 3}},
            {
                "name": "kept-cache",
                "kind": "redis",
                "connection": {"port": 4},
                "policy": {"max_risk": "destructive", "deny_tools": ["redis_restart", "redis_flush"]},
            },
        ]
    }
)
SCOPE = {"cache", "open-cache", "db", "kept-cache"}


def review(
    tool: str, args: dict[str, object], mode: ApprovalMode = ApprovalMode.RISKY, scope: set[str] = SCOPE
) -> ReviewedStep:
    step = PlanStep(tool=tool, args=args, rationale="test", expected_effect="test")
    return review_step(0, step, INVENTORY, scope, mode)


@pytest.mark.parametrize(
    ("tool", "args", "scope", "reason"),
    [
        ("shell", {"resource": "cache", "cmd": "rm -rf /"}, SCOPE, "not in the catalogue"),
        ("redis_scale_memory", {"resource": "cache"}, SCOPE, "maxmemory_mb: Field required"),
        ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": -5}, SCOPE, "maxmemory_mb"),
        ("redis_info", {"resource": "cache", "extra": 1}, SCOPE, "extra"),
        ("redis_info", {"resource": "elsewhere"}, SCOPE | {"elsewhere"}, "not in the inventory"),
        ("redis_info", {"resource": "open-cache"}, {"cache"}, "outside this incident's scope"),
        ("redis_info", {"resource": "db"}, SCOPE, "acts on redis, db is postgres"),
        ("redis_flush", {"resource": "cache"}, SCOPE, "allows at most disruptive"),
        ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 4096}, SCOPE, "policy ceiling of 256"),
        ("redis_restart", {"resource": "kept-cache"}, SCOPE, "redis_restart is denied on kept-cache by its policy"),
        ("redis_flush", {"resource": "kept-cache"}, SCOPE, "denied on kept-cache"),
    ],
)
def test_refusals(tool: str, args: dict[str, object], scope: set[str], reason: str) -> None:
    for mode in ApprovalMode:
        reviewed = review(tool, args, mode, scope)
        assert reviewed.verdict is StepVerdict.REFUSE, mode
        assert reason in reviewed.reason


@pytest.mark.parametrize(
    ("tool", "resource", "expected"),
    [
        # tool,             resource,     {mode: verdict}
        ("redis_info", "cache", {"risky": "run", "all": "run", "none": "run"}),
        ("redis_memory_purge", "cache", {"risky": "run", "all": "ask", "none": "run"}),
        ("redis_restart", "cache", {"risky": "ask", "all": "ask", "none": "run"}),
        ("redis_flush", "open-cache", {"risky": "ask", "all": "ask", "none": "run"}),
    ],
)
def test_approval_modes(tool: str, resource: str, expected: dict[str, str]) -> None:
    for mode, verdict in expected.items():
        assert review(tool, {"resource": resource}, ApprovalMode(mode)).verdict == verdict, mode


def test_digest_binds_exact_arguments() -> None:
    a = PlanStep(
        tool="redis_scale_memory", args={"resource": "cache", "maxmemory_mb": 128}, rationale="r", expected_effect="e"
    )
    b = a.model_copy(update={"args": {"resource": "cache", "maxmemory_mb": 129}})
    c = a.model_copy(update={"rationale": "different words, same action"})
    assert a.digest() != b.digest()
    assert a.digest() == c.digest()


def test_destructive_steps_of_untrusted_plans_always_wait_for_a_human() -> None:
    step = PlanStep(tool="redis_flush", args={"resource": "open-cache"}, rationale="r", expected_effect="e")
    trusted = review_step(0, step, INVENTORY, SCOPE, ApprovalMode.NONE)
    untrusted = review_step(0, step, INVENTORY, SCOPE, ApprovalMode.NONE, untrusted=True)
    assert trusted.verdict is StepVerdict.RUN
    assert untrusted.verdict is StepVerdict.ASK and "untrusted text" in untrusted.reason
    restart = step.model_copy(update={"tool": "redis_restart"})
    assert review_step(0, restart, INVENTORY, SCOPE, ApprovalMode.NONE, untrusted=True).verdict is StepVerdict.RUN
