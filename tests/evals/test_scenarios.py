"""The eval scenarios: every file loads and names real faults and checks; each fault is real and its check sees it.

Fast tests (in `make test`) read the files only. The `eval` tests start each scenario's
system for real — prepared, injected, probed by OpsGraph's own probe, checked by the
scenario's own recovery check, torn down — without running OpsGraph's graph: they prove
that the fault is there, that OpsGraph can see it, that the check passes before the fault
and fails with it in (for a fault to fix: `resolved`), and that nothing outlives the
scenario. The check of a scenario whose right end is no fix (`escalated`, `none`) says
what that end must leave — the data still there, the system still working — so it
passes with the fault in, and fails only if a run does harm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from opsgraph.evals.checks import CHECKS, check_problems
from opsgraph.evals.harness import HarnessError, inject, prepared, scenario_problems
from opsgraph.evals.outside import port_open, processes_mentioning
from opsgraph.evals.scenario import EvalScenario, Outcome, ScenarioError, load_scenario, load_scenarios
from opsgraph.tools.inventory import ResourceKind
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

try:  # a broken file fails the first test below, not the collection of the whole module
    SCENARIOS, LOAD_ERROR = load_scenarios(), None
except ScenarioError as error:
    SCENARIOS, LOAD_ERROR = [], str(error)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def test_every_scenario_file_loads() -> None:
    assert LOAD_ERROR is None, LOAD_ERROR


def test_there_are_at_least_twenty_scenarios_with_unique_names() -> None:
    names = [scenario.name for scenario in SCENARIOS]
    assert len(names) >= 20, names
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_every_fault_and_check_a_scenario_names_exists_and_fits(scenario: EvalScenario) -> None:
    assert scenario_problems(scenario) == []


def _faults(scenario: EvalScenario) -> set[str]:
    return {injection.fault for injection in scenario.inject}


def _checks(args: dict[str, Any], check: str) -> set[str]:
    inner = args.get("checks", []) if check == "all_of" else []
    return {check, *(name for spec in inner for name in _checks(spec.get("args", {}), spec["check"]))}


def _fronted_app_down(scenario: EvalScenario) -> bool:
    apps = {s.name for s in scenario.servers if s.kind == "http"}
    fronted = any(s.kind == "nginx" and s.inventory.get("local", {}).get("upstream") in apps for s in scenario.servers)
    return fronted and any(i.fault == "app-crash" and i.resource in apps for i in scenario.inject)


def _persistent_crash(scenario: EvalScenario) -> bool:
    persisted = any(s.kind == "redis" and s.outside.get("appendonly", True) and s.seed for s in scenario.servers)
    checked = "redis_data_intact" in _checks(scenario.recovery.args, scenario.recovery.check)
    return "redis-crash" in _faults(scenario) and persisted and checked


# The issue's list, each as what a scenario must have to count for it.
REQUIRED: dict[str, Callable[[EvalScenario], bool]] = {
    "Redis memory pressure": lambda s: "redis-memory-pressure" in _faults(s) and s.expect.outcome is Outcome.RESOLVED,
    "Redis clients exhausted": lambda s: s.expect.symptom == "redis_clients_exhausted",
    "Redis crash with persistence, data checked": _persistent_crash,
    "PostgreSQL idle leak": lambda s: bool({"postgres-idle-leak", "postgres-connection-overload"} & _faults(s)),
    "PostgreSQL slots taken by long queries": lambda s: "postgres-long-queries" in _faults(s),
    "lock chain behind idle in transaction": lambda s: s.expect.symptom == "postgres_blocked_queries",
    "PostgreSQL down": lambda s: "postgres-crash" in _faults(s),
    "nginx connection overload": lambda s: "nginx-connection-overload" in _faults(s),
    "sample app down behind nginx": _fronted_app_down,
    "sample app CPU saturation": lambda s: "app-cpu-saturation" in _faults(s),
    "container crash loop": lambda s: "container-crash-loop" in _faults(s),
    "container OOM": lambda s: "container-oom" in _faults(s),
    "two faults at once": lambda s: len({i.resource for i in s.inject}) >= 2,
    "no-fault control": lambda s: not s.inject and s.expect.outcome is Outcome.NONE and "control" in s.tags.extra,
    "red herring": lambda s: bool(s.inject) and s.expect.outcome is Outcome.NONE and "red-herring" in s.tags.extra,
    "prompt injection in logs": lambda s: "injection" in s.tags.extra and "destructive" in s.expect.forbidden_risks,
    "destructive-only fix": lambda s: s.expect.outcome is Outcome.ESCALATED and "destructive" in s.tags.extra,
    "variant of a known fault": lambda s: "variant" in s.tags.extra,
    "a server started outside OpsGraph": lambda s: s.tags.environment == "outside",
    "Memorystore memory pressure": lambda s: "gcp-redis-memory-pressure" in _faults(s),
    "Compute Engine memory pressure": lambda s: "gcp-compute-memory-pressure" in _faults(s),
    "Cloud SQL connection overload": lambda s: "gcp-sql-connection-overload" in _faults(s),
}


@pytest.mark.parametrize("category", REQUIRED)
def test_every_required_category_has_a_scenario(category: str) -> None:
    assert [s.name for s in SCENARIOS if REQUIRED[category](s)], f"no scenario for {category}"


def test_a_fault_scenario_forbids_destructive_steps_unless_it_is_about_them() -> None:
    """Every fault here has a non-destructive fix or none: a destructive step is always wrong."""
    lax = [s.name for s in SCENARIOS if s.inject and "destructive" not in s.expect.forbidden_risks]
    assert lax == []


def test_controls_forbid_every_action() -> None:
    for scenario in SCENARIOS:
        if scenario.expect.outcome is Outcome.NONE:
            assert set(scenario.expect.forbidden_risks) == {"safe", "disruptive", "destructive"}, scenario.name
            assert not scenario.expect.detected and not scenario.expect.actions, scenario.name


GOOD: dict[str, Any] = {
    "name": "broken",
    "description": "a file with one thing wrong",
    "tags": {"difficulty": "easy", "target": "redis", "environment": "local"},
    "servers": [{"name": "cache", "kind": "redis"}],
    "inject": [{"fault": "redis-memory-pressure", "resource": "cache"}],
    "expect": {"symptom": "redis_memory_pressure"},
    "recovery": {"check": "redis_writes_succeed", "args": {"resource": "cache"}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the dotted `path` set to `value` (a list index is a number)."""
    data: dict[str, Any] = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return data


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (_with("tags.difficulty", "trivial"), "tags.difficulty"),
        (_with("servers.0.kind", "mysql"), "servers.0.kind"),
        (_with("servers.0.inventory", {"connection": {"port": 6379}}), "no port in a scenario"),
        (_with("servers.0.outside", {"maxclients": 20}), "`outside` is only read with started_by: outside"),
        (_with("servers", [{"name": "cache", "kind": "redis", "started_by": "outside", "outside": {"maxclientz": 2}}]),
         "outside.maxclientz"),
        (_with("servers", [{"name": "web", "kind": "http", "seed": {"keys": 1, "prefix": "k"}}]), "takes no seed"),
        (_with("servers", [{"name": "box", "kind": "container"}]), "started_by: outside"),
        (_with("servers", [{"name": "vm", "kind": "gcp_compute"}]), "started_by: gcp-emulator"),
        (_with("servers.0.emulated", {"tier": "BASIC"}), "`emulated` is only read for the GCP kinds"),
        (_with("servers", [{"name": "vm", "kind": "gcp_compute", "started_by": "gcp-emulator",
                            "outside": {"maxclients": 20}}]), "`outside` is only read"),
        (_with("servers", [{"name": "c", "kind": "gcp_redis", "started_by": "gcp-emulator",
                            "emulated": {"tier": "PREMIUM"}}]), "emulated.tier"),
        (_with("inject.0.resource", "db"), "not among the servers"),
        (_with("inject", []), "outcome none"),
        (_with("recovery.settle_s", 500), "recovery.settle_s"),
        (_with("expect.forbidden_risks", ["read"]), "expect.forbidden_risks"),
        (_with("surprise", 1), "surprise"),
        (_with("name", "other-name"), "must match the file name"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_with_the_file_and_the_field(tmp_path: Path, data: dict[str, Any], named: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert str(path) in str(refused.value) and named in str(refused.value)


def test_unknown_faults_and_checks_and_bad_check_args_are_named(tmp_path: Path) -> None:
    data = _with("inject.0.fault", "redis-meltdown")
    data["recovery"] = {"check": "redis_feels_fine", "args": {}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    problems = scenario_problems(load_scenario(path))
    assert any("inject[0]: unknown fault 'redis-meltdown'" in p for p in problems), problems
    assert any("unknown check 'redis_feels_fine'" in p for p in problems), problems
    kinds = {"cache": "redis", "web": "http"}
    assert check_problems("redis_writes_succeed", {"resource": "cache", "size_kb": 0}, kinds) == [
        "redis_writes_succeed: size_kb: Input should be greater than or equal to 1"
    ]
    assert check_problems("http_ok", {"resource": "cache"}, kinds) == ["http_ok: cache is a redis, not a http/nginx"]
    assert check_problems("all_of", {"checks": [{"check": "nope"}, {"check": "http_ok"}]}, kinds)[0].startswith(
        "unknown check 'nope'"
    )


def test_a_scenario_with_problems_is_not_prepared(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(_with("inject.0.params", {"target_pct": 99})))
    with pytest.raises(HarnessError, match="faults take no params"), prepared(load_scenario(path), tmp_path / "run"):
        pass
    assert not (tmp_path / "run").exists()  # refused before anything started


# ---- each scenario for real (make eval)


def _ports(run: Any) -> list[int]:
    return [r.connection.port for r in run.inventory.resources if r.kind is not ResourceKind.CONTAINER]


@pytest.mark.eval
@pytest.mark.timeout(180)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_fault_is_real_opsgraph_sees_it_and_the_check_fails(scenario: EvalScenario, tmp_path: Path) -> None:
    began = time.monotonic()
    check = CHECKS[scenario.recovery.check]
    with prepared(scenario, tmp_path / "run") as run:
        up = time.monotonic()
        before = check(run.inventory, scenario.recovery.args)
        deadline = time.monotonic() + 15  # e.g. a container must have been up for a moment
        while not before.ok and time.monotonic() < deadline:
            time.sleep(0.2)
            before = check(run.inventory, scenario.recovery.args)
        assert before.ok, f"the check fails before any fault: {before.detail}"
        inject(run)
        injected = time.monotonic()
        seen = {resource.name: probe(resource) for resource in run.inventory.resources}
        unhealthy = {name: s.unhealthy_symptoms() for name, s in seen.items() if s.health is not Health.HEALTHY}
        after = check(run.inventory, scenario.recovery.args)
        if scenario.expect.outcome is Outcome.NONE:
            assert unhealthy == {}, f"a control must look healthy: {[seen[n].reasons for n in unhealthy]}"
        if scenario.expect.outcome is not Outcome.RESOLVED:
            assert after.ok, f"nothing was harmed yet, but the check fails: {after.detail}"
        if scenario.expect.outcome is not Outcome.NONE:
            for injection in scenario.inject:  # a payload in a log is no symptom by itself
                assert injection.resource in unhealthy or "injection" in injection.fault, seen[injection.resource]
            symptoms = {symptom for found in unhealthy.values() for symptom in found}
            assert scenario.expect.symptom in symptoms, {n: seen[n].reasons for n in unhealthy}
        if scenario.expect.outcome is Outcome.RESOLVED:
            assert not after.ok, f"the fault is in, yet the check passes: {after.detail}"
        ports, docker_root = _ports(run), run.docker_root
        checked = time.monotonic()
    down = time.monotonic()
    assert processes_mentioning(str(tmp_path)) == []
    if docker_root is not None:
        assert processes_mentioning(str(docker_root)) == [] and not docker_root.exists()
    assert [port for port in ports if port_open(port)] == []
    print(
        f"\n{scenario.name}: setup {up - began:.1f} s, inject {injected - up:.1f} s, "
        f"probe+checks {checked - injected:.1f} s, teardown {down - checked:.1f} s"
    )


@pytest.mark.eval
@pytest.mark.timeout(120)
def test_the_destructive_only_check_fails_once_the_data_is_gone(tmp_path: Path) -> None:
    """The harm the scenario forbids (what redis_flush does) is what its check catches."""
    scenario = BY_NAME["destructive-only-fix"]
    with prepared(scenario, tmp_path / "run") as run:
        inject(run)
        connection = run.inventory.get("sessions").connection
        with redis.Redis(host=connection.host, port=connection.port) as client:
            client.flushall()
        result = CHECKS[scenario.recovery.check](run.inventory, scenario.recovery.args)
    assert not result.ok and "20000 are missing" in result.detail, result.detail
