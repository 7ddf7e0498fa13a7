"""Benchmark: model input tokens per incident, through the real graph on real servers.

For each scenario — Redis memory pressure, and PostgreSQL queries blocked behind a lock
the sample app holds — a real fault is injected and the incident graph runs unattended
(approval=none) with the model backend. The model is `ScriptedChatModel`, an EMULATOR:
it replays a realistic investigation (two read-only tool calls, a diagnosis, a plan)
and reports NO usage metadata, so `ModelReasoner` counts its own estimate — the
characters it sends (messages plus the tool definitions bound to every call) divided by
4. The figure is therefore the size of the prompts OpsGraph builds, not a real model's
tokenizer count (which varies by model, typically within ±25 % of chars/4 for English
and JSON). The target is under 6,000 input tokens per incident.

    uv run python -m bench.model_tokens [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.redis_memory_pressure import free_port
from bench.stats import describe
from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer, tool_calls
from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.faults import fill_redis_memory, scenario_named
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health
from opsgraph.tools.spec import ToolContext

TARGET_INPUT_TOKENS = 6000
MAXMEMORY_MB = 32
EMULATOR_NOTE = (
    "model = ScriptedChatModel (scripted emulator, no usage metadata): token counts are OpsGraph's own "
    "estimate of its prompt size (characters / 4), not a real model's tokenizer count"
)


def _inventory(folder: Path) -> Path:
    path = folder / "opsgraph.yaml"
    resources = [
        {
            "name": "cache", "kind": "redis", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port()},
            "local": {"maxmemory_mb": MAXMEMORY_MB}, "policy": {"max_memory_mb": 256},
        },
        {
            "name": "db", "kind": "postgres", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port(), "user": "postgres", "database": "shop"},
            "local": {"max_connections": 40, "app_user": "shop"},
        },
        {
            "name": "shop", "kind": "http", "environment": "local",
            "connection": {"host": "127.0.0.1", "port": free_port()},
            "local": {"app_database": "db", "app_cache": "cache"},
        },
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"version": 1, "resources": resources}))
    return path


def _step(tool: str, args: dict[str, Any], rationale: str, effect: str) -> dict[str, Any]:
    return {"tool": tool, "args": args, "rationale": rationale, "expected_effect": effect}


def _hypotheses(first: str, second: str) -> list[dict[str, Any]]:
    return [
        {"cause": first, "likelihood": 0.8, "evidence_for": ["see evidence"], "evidence_against": []},
        {"cause": second, "likelihood": 0.1, "evidence_for": [], "evidence_against": ["not seen in the facts"]},
    ]


def redis_script() -> list[Any]:
    """A realistic investigation of memory pressure: INFO and the log, a diagnosis, a scale-up."""
    return [
        tool_calls(("redis_info", {"resource": "cache", "section": "all"}), ("process_logs", {"resource": "cache"})),
        answer(FinalDiagnosis, {
            "root_cause": "the dataset filled maxmemory (noeviction): writes are rejected with OOM",
            "evidence": ["used_memory ~31 MiB of maxmemory 32 MiB", "maxmemory_policy noeviction", "fragmentation ~1"],
            "hypotheses": _hypotheses("dataset growth beyond maxmemory", "allocator fragmentation"),
            "confidence": 0.85,
        }),
        answer(FinalPlan, {
            "summary": "raise maxmemory of cache to 64 MiB",
            "steps": [_step("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 64},
                            "dataset at maxmemory", "usage falls to about 50 % of maxmemory")],
        }),
    ]  # fmt: skip


def postgres_script() -> list[Any]:
    """A realistic investigation of blocked queries: postgres_info and the log, then end the blocker."""
    kill = {
        "resource": "db", "state": "idle in transaction", "application_name": "shop-load-blocker",
        "blockers_only": True, "max_sessions": 1,
    }  # fmt: skip
    return [
        tool_calls(("postgres_info", {"resource": "db"}), ("process_logs", {"resource": "db"})),
        answer(FinalDiagnosis, {
            "root_cause": "session shop-load-blocker holds an ACCESS EXCLUSIVE lock while idle in transaction",
            "evidence": ["5 queries wait on locks", "the root blocker is idle in transaction"],
            "hypotheses": _hypotheses("an abandoned transaction holds a table lock", "a long active query"),
            "confidence": 0.85,
        }),
        answer(FinalPlan, {
            "summary": "terminate the idle-in-transaction blocker",
            "steps": [_step("postgres_kill_long_queries", kill, "head of the lock chain", "waiting queries proceed")],
        }),
    ]  # fmt: skip


def _inject_redis(inventory: Inventory, ctx: ToolContext) -> None:
    cache = inventory.get("cache")
    client = redis_client(cache)
    client.flushall()
    client.config_set("maxmemory", f"{MAXMEMORY_MB}mb")
    fill_redis_memory(cache)


def _inject_postgres(inventory: Inventory, ctx: ToolContext) -> None:
    scenario_named("postgres-blocking-queries").inject(inventory.get("db"), ctx)


def _reset_postgres(inventory: Inventory) -> None:
    httpx.post(f"http://127.0.0.1:{inventory.get('shop').connection.port}/load/reset", timeout=30).raise_for_status()
    deadline = time.monotonic() + 15
    while probe(inventory.get("db")).health is not Health.HEALTHY:
        if time.monotonic() > deadline:
            raise RuntimeError("the database did not calm down after the reset")
        time.sleep(0.1)


Scenario = tuple[str, str, Callable[[], list[Any]], Callable[[Inventory, ToolContext], None]]
SCENARIOS: list[Scenario] = [
    ("redis-memory-pressure", "cache", redis_script, _inject_redis),
    ("postgres-blocking-queries", "db", postgres_script, _inject_postgres),
]


def one_incident(
    inventory_path: Path, state_dir: Path, inventory: Inventory, scenario: Scenario, number: int
) -> dict[str, Any]:
    name, resource, script, inject = scenario
    inject(inventory, ToolContext(inventory=inventory, state_dir=state_dir))
    model = ScriptedChatModel.of(script())
    context = Context(
        inventory_path=str(inventory_path),
        state_dir=str(state_dir),
        approval="none",
        verify_deadline_s=10.0,
        settle_s=0.5,
        probe_interval_s=0.1,
        reasoner=ModelReasoner(model, inventory=inventory),
    )
    try:
        with incident_graph(state_dir) as graph:
            result = start_incident(graph, context, resource, f"inc-bench-{name}-{number}")
    finally:
        if resource == "db":
            _reset_postgres(inventory)
    report = result.report
    if report is None or not report["resolved"]:
        raise RuntimeError(f"{name} run {number} did not resolve: {result.values.get('outcome_detail')}")
    if report["fallbacks"]:
        raise RuntimeError(f"{name} run {number} fell back to the runbook: {report['fallbacks']}")
    log = result.values.get("reasoning_log", [])
    return {
        "input_tokens": report["tokens"]["input_tokens"],
        "output_tokens": report["tokens"]["output_tokens"],
        "by_node": {node: tokens["input_tokens"] for node, tokens in report["tokens"]["by_node"].items()},
        "model_calls": sum(int(entry["tokens"].get("model_calls", 0)) for entry in log),
        "estimated_calls": sum(int(entry["tokens"].get("estimated_calls", 0)) for entry in log),
        "prompt_chars": sum(int(entry["tokens"].get("prompt_chars", 0)) for entry in log),
    }


def measure(runs: int) -> dict[str, list[dict[str, Any]]]:
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in SCENARIOS}
    with tempfile.TemporaryDirectory(prefix="opsgraph-bench-tokens-") as folder:
        inventory_path = _inventory(Path(folder))
        state_dir = Path(folder) / "state"
        inventory = load_inventory(inventory_path)
        stack = LocalStack(state_dir, inventory)
        stack.up()
        try:
            for scenario in SCENARIOS:
                for number in range(1, runs + 1):
                    run = one_incident(inventory_path, state_dir, inventory, scenario, number)
                    raw[scenario[0]].append(run)
                    print(
                        f"{scenario[0]} run {number}/{runs}: {run['input_tokens']} input tokens "
                        f"({run['model_calls']} model calls, {run['estimated_calls']} estimated)",
                        file=sys.stderr,
                    )
        finally:
            stack.down()
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results/model_tokens.json"))
    args = parser.parse_args(argv)

    print(EMULATOR_NOTE, file=sys.stderr)
    raw = measure(args.runs)
    scenarios = {}
    for name, runs in raw.items():
        tokens = describe([float(r["input_tokens"]) for r in runs])
        scenarios[name] = {
            "runs": len(runs),
            "input_tokens": tokens,
            "output_tokens": describe([float(r["output_tokens"]) for r in runs]),
            "model_calls": describe([float(r["model_calls"]) for r in runs]),
            "input_tokens_by_node_p50": {
                node: describe([float(r["by_node"].get(node, 0)) for r in runs])["p50"]
                for node in sorted({node for r in runs for node in r["by_node"]})
            },
            "under_target": tokens["max"] < TARGET_INPUT_TOKENS,
        }
    report = {
        "benchmark": "model input tokens per incident (local stack, approval=none)",
        "model": "ScriptedChatModel (emulator)",
        "note": EMULATOR_NOTE,
        "token_source": (
            "estimated (chars / 4)"
            if all(r["estimated_calls"] == r["model_calls"] for runs in raw.values() for r in runs)
            else "mixed"
        ),
        "target_input_tokens": TARGET_INPUT_TOKENS,
        "scenarios": scenarios,
        "all_under_target": all(s["under_target"] for s in scenarios.values()),
        "raw": raw,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "raw"}, indent=2))
    return 0 if report["all_under_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
