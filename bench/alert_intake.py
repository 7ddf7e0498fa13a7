"""Benchmark: alerts into a running `opsgraph serve`, over real HTTP on loopback.

One private redis-server under memory pressure, `opsgraph serve --no-probes --approval risky`:

- **first alert → plan waiting**: one Alertmanager notification for the Redis, timed from the
  POST until the incident waits for approval (probe, diagnosis, plan: what an operator waits for
  before a page says "approve?");
- **repeat (deduplicated)**: the same notification again, N times, while that incident waits —
  what Alertmanager's repeat_interval costs OpsGraph per repeat;
- **unrouted**: N alerts that name no resource (recorded, nothing started);
- **floor**: `GET /healthz` on the same server, interleaved with the above, in the same run.

Reported as percentiles and as ratios of each p50 to the floor's p50, so a slower or busier
machine moves the figures, not the ratios. The incident is rejected at the end (nothing runs).

    uv run python -m bench.alert_intake [--repeats 200] [--output report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.stats import describe, percentile
from opsgraph.evals.outside import free_port, wait_until
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.inventory import load_inventory

_INGEST = "bench-ingest-token-0123456789"
_APPROVE = "bench-approve-token-0123456789"
_DEADLINE_S = 60.0


def _alert(fingerprint: str, resource: str | None) -> dict[str, Any]:
    labels = {"alertname": "RedisMemoryHigh", "job": "redis"}
    if resource is not None:
        labels["resource"] = resource
    started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    alert = {"status": "firing", "labels": labels, "annotations": {}, "startsAt": started, "fingerprint": fingerprint}
    return {"version": "4", "status": "firing", "receiver": "opsgraph", "alerts": [alert]}


@contextmanager
def _serving(folder: Path) -> Iterator[httpx.Client]:
    """A Redis under memory pressure and `opsgraph serve` on it; an HTTP client for its API."""
    inventory_path = folder / "opsgraph.yaml"
    resource = {"name": "cache", "kind": "redis", "environment": "local",
                "connection": {"host": "127.0.0.1", "port": free_port()}, "local": {"maxmemory_mb": 32}}  # fmt: skip
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": [resource]}))
    state_dir = folder / "state"
    stack = LocalStack(state_dir, load_inventory(inventory_path))
    stack.up()
    port = free_port()
    command = [sys.executable, "-m", "opsgraph", "serve", "--inventory", str(inventory_path), "--state-dir",
               str(state_dir), "--port", str(port), "--no-probes", "--approval", "risky"]  # fmt: skip
    env = {**os.environ, "OPSGRAPH_API_TOKENS": f"am:ingest:{_INGEST},bench:approve:{_APPROVE}"}
    with (folder / "serve.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        fill_redis_memory(stack.inventory.get("cache"))
        wait_until(lambda: _answers(client), "opsgraph serve to answer", _DEADLINE_S)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=60)
        stack.down()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _timed_ms(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def run(repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opsgraph-bench-alerts-") as tmp, _serving(Path(tmp)) as client:
        ingest = {"Authorization": f"Bearer {_INGEST}"}
        approve = {"Authorization": f"Bearer {_APPROVE}"}
        first = _alert("bench-fp", "cache")
        started = time.perf_counter()
        receipt = client.post("/alerts/alertmanager", json=first, headers=ingest).json()["alerts"][0]
        assert receipt["outcome"] == "started", receipt
        wait_until(
            lambda: client.get("/api/approvals", headers=approve).json(),
            "the incident to wait for approval",
            _DEADLINE_S,
        )
        to_plan = time.perf_counter() - started

        floor: list[float] = []
        repeat: list[float] = []
        unrouted: list[float] = []
        for index in range(repeats):
            floor.append(_timed_ms(lambda: client.get("/healthz")))
            repeat.append(_timed_ms(lambda: client.post("/alerts/alertmanager", json=first, headers=ingest)))
            stray = _alert(f"bench-stray-{index}", None)
            unrouted.append(_timed_ms(lambda: client.post("/alerts/alertmanager", json=stray, headers=ingest)))  # noqa: B023
        incidents = client.get("/api/incidents", headers=approve).json()
        record = client.get(f"/api/incidents/{receipt['incident_id']}", headers=approve).json()
        outcomes = [row["outcome"] for row in record["alerts"]]  # every alert that named this incident
        client.post(f"/api/approvals/{receipt['incident_id']}", json={"decision": "reject"}, headers=approve)
    return {
        "repeats": repeats,
        "incidents": len(incidents),
        "deduplicated": outcomes.count("deduplicated"),
        "first_alert_to_plan_s": round(to_plan, 3),
        "floor_healthz_ms": describe(floor),
        "repeat_ms": describe(repeat),
        "unrouted_ms": describe(unrouted),
        "repeat_p50_vs_floor": round(percentile(repeat, 50) / percentile(floor, 50), 1),
        "unrouted_p50_vs_floor": round(percentile(unrouted, 50) / percentile(floor, 50), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    report = run(args.repeats)
    print(f"alerts into opsgraph serve (1 Redis, --no-probes, loopback HTTP, {args.repeats} of each)")
    print(f"  first alert -> plan waiting for approval: {report['first_alert_to_plan_s']} s")
    for key, label in (("floor_healthz_ms", "GET /healthz (floor)"), ("repeat_ms", "repeat, deduplicated"),
                       ("unrouted_ms", "unrouted")):  # fmt: skip
        figures = report[key]
        print(f"  {label:<22} p50 {figures['p50']} ms  p90 {figures['p90']} ms  max {figures['max']} ms")
    ratios = f"repeat {report['repeat_p50_vs_floor']}x, unrouted {report['unrouted_p50_vs_floor']}x"
    print(f"  p50 ratios to the floor: {ratios}")
    print(f"  incidents opened: {report['incidents']}; repeats recorded as deduplicated: {report['deduplicated']}")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    # One incident for the one alert, every repeat deduplicated: anything else is a correctness failure.
    return 0 if report["incidents"] == 1 and report["deduplicated"] == args.repeats else 1


if __name__ == "__main__":
    raise SystemExit(main())
