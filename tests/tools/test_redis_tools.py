"""Every Redis tool and the probe, against a real private redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Stack, free_port, redis_resource, running_stack

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import run_tool
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource(max_risk="destructive")]) as running:
        yield running


def tools(stack: Stack) -> ToolContext:
    return ToolContext(inventory=stack.inventory, state_dir=stack.state_dir)


def test_catalogue_declares_risk_classes() -> None:
    risks = {name: spec.risk for name, spec in CATALOGUE.items() if name.startswith("redis_")}
    assert risks == {
        "redis_info": Risk.READ,
        "redis_clients": Risk.READ,
        "redis_kill_idle_clients": Risk.DISRUPTIVE,
        "redis_scale_clients": Risk.DISRUPTIVE,
        "redis_memory_purge": Risk.SAFE,
        "redis_scale_memory": Risk.DISRUPTIVE,
        "redis_flush": Risk.DESTRUCTIVE,
        "redis_restart": Risk.DISRUPTIVE,
    }


def test_probe_grades_memory_pressure(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    healthy = probe(cache)
    assert healthy.health is Health.HEALTHY
    assert healthy.metrics["maxmemory_mb"] == 32

    injected = fill_redis_memory(cache)
    assert injected["used_pct"] >= 95
    failed = probe(cache)
    assert failed.health is Health.FAILED
    assert failed.symptom == "redis_memory_pressure"
    assert float(failed.metrics["memory_used_pct"] or 0) >= 95
    assert "of maxmemory 32.0 MiB" in failed.reasons[0]


def test_degraded_band(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache, target_pct=88)
    assert probe(cache).health is Health.DEGRADED


def test_info(stack: Stack) -> None:
    outcome = run_tool("redis_info", {"resource": "cache", "section": "memory"}, tools(stack), 5)
    assert outcome.ok, outcome.error
    assert outcome.output is not None
    assert outcome.output["maxmemory"] == 32 * 2**20
    assert outcome.output["maxmemory_policy"] == "noeviction"


def test_oom_rejected_writes_are_counted(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache, target_pct=101)  # past the limit: the last writes are refused with OOM
    outcome = run_tool("redis_info", {"resource": "cache"}, tools(stack), 5)
    assert outcome.output is not None and outcome.output["oom_rejected_writes"] >= 1


def test_memory_purge_keeps_data(stack: Stack) -> None:
    client = redis_client(stack.inventory.get("cache"))
    client.set("k", "v")
    outcome = run_tool("redis_memory_purge", {"resource": "cache"}, tools(stack), 5)
    assert outcome.ok, outcome.error
    assert client.get("k") == "v"


def test_scale_memory_only_raises(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    fill_redis_memory(cache)
    for lower in (8, 31, 32):  # below usage, below and at the current maxmemory (32 MiB)
        lowered = run_tool("redis_scale_memory", {"resource": "cache", "maxmemory_mb": lower}, tools(stack), 5)
        assert not lowered.ok and lowered.error is not None and "only raises it" in lowered.error, lower
    with redis_client(cache) as client:
        assert int(client.config_get("maxmemory")["maxmemory"]) == 32 * 2**20  # untouched
    raised = run_tool("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 96}, tools(stack), 5)
    assert raised.ok, raised.error
    assert raised.output == {"previous_maxmemory_mb": 32.0, "maxmemory_mb": 96}
    assert probe(cache).health is Health.HEALTHY


def test_flush_deletes_everything(stack: Stack) -> None:
    client = redis_client(stack.inventory.get("cache"))
    client.mset({"a": "1", "b": "2"})
    outcome = run_tool("redis_flush", {"resource": "cache"}, tools(stack), 5)
    assert outcome.ok and outcome.output == {"keys_deleted": 2}
    assert client.dbsize() == 0


def test_restart_goes_through_the_local_environment(stack: Stack) -> None:
    before = stack.local.status()[0].pid
    outcome = run_tool("redis_restart", {"resource": "cache"}, tools(stack), 20)
    assert outcome.ok, outcome.error
    assert outcome.output is not None and outcome.output["running"] is True
    assert outcome.output["pid"] != before
    assert redis_client(stack.inventory.get("cache")).ping()


def test_failures_are_data_not_crashes(stack: Stack) -> None:
    ctx = tools(stack)
    assert "not in the catalogue" in str(run_tool("redis_shell", {"resource": "cache"}, ctx, 5).error)
    assert "invalid arguments" in str(run_tool("redis_scale_memory", {"resource": "cache"}, ctx, 5).error)
    assert "not in the inventory" in str(run_tool("redis_info", {"resource": "nope"}, ctx, 5).error)


def test_unreachable_redis_is_a_failed_snapshot_and_an_error_outcome(tmp_path: Path) -> None:
    inventory = parse_inventory({"resources": [{"name": "gone", "kind": "redis", "connection": {"port": free_port()}}]})
    snapshot = probe(inventory.get("gone"))
    assert snapshot.health is Health.FAILED and snapshot.symptom == "redis_unreachable"
    outcome = run_tool("redis_info", {"resource": "gone"}, ToolContext(inventory=inventory, state_dir=tmp_path), 5)
    assert not outcome.ok and outcome.error is not None and "ConnectionError" in outcome.error


def test_clients_and_killing_idle_ones(stack: Stack) -> None:
    cache = stack.inventory.get("cache")
    idle = redis_client(cache)
    idle.client_setname("leaky")
    busy = redis_client(cache)
    busy.ping()
    listed = run_tool("redis_clients", {"resource": "cache"}, tools(stack), 5)
    assert listed.ok and listed.output is not None and listed.output["connected"] >= 2
    assert "leaky" in {client["name"] for client in listed.output["idlest"]}

    too_soon = run_tool("redis_kill_idle_clients", {"resource": "cache", "min_idle_s": 10}, tools(stack), 5)
    assert too_soon.ok and too_soon.output == {"killed": 0, "clients": []}
    refused = run_tool("redis_kill_idle_clients", {"resource": "cache", "min_idle_s": 1}, tools(stack), 5)
    assert not refused.ok and "min_idle_s" in str(refused.error)  # at least 10 s: never live clients
