"""Benchmark: the local Redis memory-pressure scenario, end to end, N runs.

Each run starts from a fresh private redis-server, injects real memory pressure,
runs the incident graph unattended (approval=none: a human's reaction time is not
OpsGraph's speed) and records MTTD, MTTR, the time until recovery was confirmed (MTTR + the verifier's settle
window), the run's wall time and the graph's own
overhead (wall time minus probes, tool calls and verifier waits).

    uv run python -m bench.redis_memory_pressure [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.instrument import io_clock
from bench.stats import describe
from opsgraph.evals.outside import free_port as free_port  # each port handed out once
from opsgraph.graph.context import Context
from opsgraph.graph.fixing import fix_all, summary
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import load_inventory

# The system we learn from needed 232 s for this scenario.
BASELINE_MTTR_S = 232.0
TARGET_MEDIAN_MTTR_S = 10.0


def one_run(folder: Path) -> dict[str, Any]:
    inventory_path = folder / "opsgraph.yaml"
    resource = {
        "name": "cache",
        "kind": "redis",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": free_port()},
        "local": {"maxmemory_mb": 64},
    }
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": [resource]}))
    state_dir = folder / "state"
    stack = LocalStack(state_dir, load_inventory(inventory_path))
    stack.up()
    try:
        fill_redis_memory(stack.inventory.get("cache"))
        injected_at = time.time()  # the fault exists from here on
        context = Context(inventory_path=str(inventory_path), state_dir=str(state_dir), approval="none")
        with io_clock() as clock:
            started = time.perf_counter()
            [result] = fix_all(context, approver=lambda request: None, fault_started_at=injected_at)
            wall = time.perf_counter() - started
        record = summary(result)
        if not record["resolved"]:
            raise RuntimeError(f"run did not resolve: {record.get('outcome_detail')}")
        return {
            "mttd_s": record["mttd_s"],
            "mttr_s": record["mttr_s"],
            "verified_after_s": record["verified_after_s"],
            "wall_s": wall,
            "io_s": clock.seconds,
            "overhead_s": wall - clock.seconds,
        }
    finally:
        stack.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results/redis_memory_pressure.json"))
    args = parser.parse_args(argv)

    runs = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="opsgraph-bench-") as folder:
            run = one_run(Path(folder))
        runs.append(run)
        print(
            f"run {number}/{args.runs}: MTTD {run['mttd_s']:.3f} s  MTTR {run['mttr_s']:.3f} s  "
            f"wall {run['wall_s']:.3f} s  graph overhead {run['overhead_s'] * 1000:.0f} ms",
            file=sys.stderr,
        )

    mttr = describe([r["mttr_s"] for r in runs])
    report = {
        "scenario": "redis-memory-pressure (local)",
        "runs": len(runs),
        "mttd_s": describe([r["mttd_s"] for r in runs]),
        "mttr_s": mttr,
        "verified_after_s": describe([r["verified_after_s"] for r in runs]),
        "wall_s": describe([r["wall_s"] for r in runs]),
        "graph_overhead_s": describe([r["overhead_s"] for r in runs]),
        "graph_overhead_share": describe([r["overhead_s"] / r["wall_s"] for r in runs]),
        "speedup_vs_baseline_232s": round(BASELINE_MTTR_S / mttr["p50"], 1),
        "median_mttr_under_10s": mttr["p50"] < TARGET_MEDIAN_MTTR_S,
        "raw": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "raw"}, indent=2))
    return 0 if report["median_mttr_under_10s"] else 1


if __name__ == "__main__":
    sys.exit(main())
