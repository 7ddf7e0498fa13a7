"""Fault injection through real clients, for demos, tests and evals.

Each scenario produces the real symptom (not a flag) on a real target; one module
per target kind (or per way of hurting one: sessions held, processes crashed, traces
left) declares its `SCENARIOS`, registered here by name.
"""

from __future__ import annotations

from opsgraph.tools.faults import app, containers, crashes, gcp, nginx, postgres, redis, sessions, traces
from opsgraph.tools.faults.redis import fill_redis_memory
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Inventory, Resource

_ALL = [
    scenario
    for module in (redis, postgres, nginx, containers, sessions, crashes, app, traces, gcp)
    for scenario in module.SCENARIOS
]
SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _ALL}
if len(SCENARIOS) != len(_ALL):
    raise RuntimeError("two fault scenarios share a name")


class UnknownScenario(KeyError):
    """No scenario by that name."""


def target_of(scenario: Scenario, inventory: Inventory, name: str | None) -> Resource:
    """The resource a scenario hits: the one named, else the inventory's first of the right kind."""
    if name is not None:
        resource = inventory.get(name)
        if resource.kind is not scenario.target_kind:
            raise ValueError(f"{scenario.name} targets a {scenario.target_kind}; {name} is a {resource.kind}")
        return resource
    for resource in inventory.resources:
        if resource.kind is scenario.target_kind:
            return resource
    raise ValueError(f"{scenario.name} needs a {scenario.target_kind} resource and the inventory has none")


def scenario_named(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise UnknownScenario(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name]


__all__ = ["SCENARIOS", "Scenario", "UnknownScenario", "fill_redis_memory", "scenario_named", "target_of"]
