"""The whole alert path with real parts: Redis → prometheus-redis-exporter → Prometheus (the shipped
resource rule) → Alertmanager → `opsgraph serve` → one incident, approved through the API, fixed and
verified — and Prometheus scraping `opsgraph serve`'s own /metrics on the way.

`opsgraph serve` runs with `--no-probes`, so the alert is the only detector. Alertmanager repeats its
notification every second while the incident waits for approval: each repeat must land on the same
incident. The rule's `for: 1m` is shortened to `for: 0s` in the copy Prometheus loads; nothing else of
the shipped rule changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prom_support import alertmanager, prometheus, redis_exporter, scrape_job
from support import Stack, free_port, redis_resource, running_stack, wait_for

from opsgraph.tools.faults import fill_redis_memory
from serve.serve_support import APPROVE, INGEST, READ, TOKENS, bearer

ROOT = Path(__file__).parents[2]
RESOURCE_RULES = ROOT / "deploy" / "prometheus" / "resource-rules.yml"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource(maxmemory_mb=32)]) as running:
        inventory = yaml.safe_load(running.inventory_path.read_text())
        inventory["alert_routes"] = [{"match": {"job": "redis"}, "resource": "cache"}]
        running.inventory_path.write_text(yaml.safe_dump(inventory))
        yield running


@pytest.fixture
def opsgraph_serve(stack: Stack) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "opsgraph", "serve", "--inventory", str(stack.inventory_path),
        "--state-dir", str(stack.state_dir), "--approval", "risky", "--port", str(port), "--no-probes",
        "--interval", "0.5",
    ]  # fmt: skip
    env = {**os.environ, "OPSGRAPH_API_TOKENS": TOKENS}
    log_path = stack.state_dir.parent / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url, process, log_path), "opsgraph serve to answer /healthz", timeout_s=60)
        yield url
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, log_path.read_text()[-3000:]


def _healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, f"opsgraph serve exited:\n{log.read_text()[-3000:]}"
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _quick_rules(folder: Path) -> Path:
    """The shipped resource rules with `for: 0s`, so the test waits seconds, not a minute."""
    rules = yaml.safe_load(RESOURCE_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "resource-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def _alertmanager_config(serve_url: str, token_file: Path) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "opsgraph",
            "group_by": ["alertname", "instance"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1s",
        },
        "receivers": [
            {
                "name": "opsgraph",
                "webhook_configs": [
                    {
                        "url": f"{serve_url}/alerts/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
                    }
                ],
            }
        ],
    }


def test_an_alert_from_a_real_alertmanager_opens_one_incident_that_is_fixed_and_verified(
    stack: Stack, opsgraph_serve: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "opsgraph-token"
    token_file.write_text(INGEST)
    cache = stack.inventory.get("cache")
    api = httpx.Client(base_url=opsgraph_serve, headers=bearer(READ), timeout=30)
    with (
        redis_exporter(tmp_path / "exporter", cache.connection.host, cache.connection.port) as exporter,
        alertmanager(tmp_path / "am", _alertmanager_config(opsgraph_serve, token_file)) as am,
        prometheus(
            tmp_path / "prom",
            [scrape_job("redis", exporter.address), scrape_job("opsgraph", opsgraph_serve.removeprefix("http://"))],
            rule_files=[_quick_rules(tmp_path / "rules")],
            alertmanager_url=am.url,
        ) as prom,
    ):
        prom.wait_for_target("redis")
        prom.wait_for_target("opsgraph")
        fill_redis_memory(cache)
        prom.wait_for_alert("RedisMemoryHigh")

        def waiting() -> list[dict[str, Any]]:
            return [i for i in api.get("/api/incidents").json() if i["status"] == "awaiting_approval"]

        [incident] = wait_for(waiting, "the alert's incident to wait for approval", timeout_s=60)
        incident_id = incident["incident_id"]

        def repeats() -> list[dict[str, Any]] | None:
            rows = api.get(f"/api/incidents/{incident_id}").json()["alerts"]
            return rows if sum(row["outcome"] == "deduplicated" for row in rows) >= 2 else None

        rows = wait_for(repeats, "Alertmanager to repeat its notification", timeout_s=60)
        assert rows[0]["outcome"] in ("started", "ran") and rows[0]["name"] == "RedisMemoryHigh"
        assert rows[0]["labels"]["job"] == "redis", rows[0]
        assert len(api.get("/api/incidents").json()) == 1

        [request] = api.get("/api/approvals").json()
        answer = {"decision": "approve", "digests": request["digests"], "comment": "approved from the alert"}
        done = api.post(f"/api/approvals/{incident_id}", json=answer, headers=bearer(APPROVE), timeout=120)
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "resolved", done.json()
        report = api.get(f"/api/incidents/{incident_id}").json()["report"]
        assert report["resolved"] and report["actions"][-1]["data_survived"] is not False
        assert report["timeline"][0]["event"] == "alert RedisMemoryHigh from alertmanager; probed cache"

        # Prometheus sees the fix (the rule stops firing), Alertmanager says so, OpsGraph records it.
        def resolved_recorded() -> bool:
            rows = api.get("/api/alerts", params={"limit": 500}).json()
            return any(row["status"] == "resolved" for row in rows)

        wait_for(resolved_recorded, "Alertmanager's resolved notification", timeout_s=60)
        assert len(api.get("/api/incidents").json()) == 1  # still the one incident

        # OpsGraph's own /metrics, as the real Prometheus scraped them.
        prom.wait_for_value('opsgraph_incidents_total{outcome="resolved"}', lambda v: v == 1)
        prom.wait_for_value('sum(opsgraph_alerts_deduplicated_total{source="alertmanager"})', lambda v: v >= 2)
