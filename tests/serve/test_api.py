"""`opsgraph serve`'s API and alert intake on a real Redis: tokens and scopes, bad input, one incident per alert."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Stack, redis_resource, running_stack, wait_for

from opsgraph.tools.faults import fill_redis_memory
from serve.serve_support import APPROVE, INGEST, READ, Served, alert, alertmanager_payload, bearer, served


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        yield running


def incidents(app: Served) -> list[dict[str, Any]]:
    return list(app.get("/api/incidents"))


def waiting(app: Served) -> list[dict[str, Any]]:
    return [i for i in incidents(app) if i["status"] == "awaiting_approval"]


ROUTES = [
    ("get", "/api/resources"),
    ("post", "/api/scan"),
    ("post", "/api/resources/cache/fix"),
    ("get", "/api/incidents"),
    ("get", "/api/incidents/inc-x"),
    ("get", "/api/approvals"),
    ("post", "/api/approvals/inc-x"),
    ("get", "/api/tools"),
    ("get", "/api/alerts"),
    ("post", "/alerts/alertmanager"),
    ("post", "/alerts/webhook"),
]


def test_requests_without_a_known_token_are_refused(stack: Stack) -> None:
    with served(stack) as app:
        for method, path in ROUTES:
            for headers in ({}, bearer("not-a-token-at-all-1234"), {"Authorization": "Basic YWxpY2U6eA=="}):
                response = app.client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
        assert app.client.get("/healthz").status_code == 200  # open, as exporters are


def test_each_scope_does_only_its_job(stack: Stack) -> None:
    with served(stack) as app:
        decision = {"decision": "approve", "digests": ["x"]}
        refused = app.client.post("/api/approvals/inc-x", headers=bearer(READ), json=decision)
        assert refused.status_code == 403 and "scope read, not approve" in refused.json()["detail"]
        assert app.client.post("/api/resources/cache/fix", headers=bearer(READ)).status_code == 403
        assert (
            app.client.post(
                "/alerts/alertmanager", headers=bearer(READ), json=alertmanager_payload(alert())
            ).status_code
            == 403
        )
        assert app.client.get("/api/incidents", headers=bearer(INGEST)).status_code == 403
        assert app.client.get("/api/incidents", headers=bearer(APPROVE)).status_code == 200
        assert app.runtime.operations.ledger.alerts() == [] and incidents(app) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda p: p.update(version="3"), "body.version"),
        (lambda p: p["alerts"][0].pop("startsAt"), "body.alerts.0.startsAt"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "body.alerts.0.startsAt"),
        (lambda p: p["alerts"][1].update(status="pending"), "body.alerts.1.status"),
        (lambda p: p["alerts"][1]["labels"].update(team=7), "body.alerts.1.labels.team"),
        (lambda p: p.update(alerts=[]), "body.alerts"),
    ],
    ids=["version", "no-startsAt", "bad-startsAt", "bad-status", "label-not-text", "no-alerts"],
)
def test_a_malformed_alert_gets_a_4xx_naming_the_field_and_records_nothing(
    stack: Stack, change: Any, where: str
) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    payload = alertmanager_payload(alert(fingerprint="a"), alert(fingerprint="b"))  # the first one is valid
    change(payload)
    with served(stack) as app:
        response = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=payload)
        assert response.status_code == 422, response.text
        assert where in response.json()["detail"], response.json()
        assert app.runtime.operations.ledger.alerts() == [] and incidents(app) == []


def test_not_json_is_refused_too(stack: Stack) -> None:
    with served(stack) as app:
        response = app.client.post(
            "/alerts/alertmanager", headers={**bearer(INGEST), "Content-Type": "application/json"}, content=b"{nope"
        )
        assert response.status_code == 422 and "invalid request" in response.json()["detail"]
        assert app.runtime.operations.ledger.alerts() == []


def test_a_repeated_alert_opens_one_incident_which_an_api_approval_fixes(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    payload = alertmanager_payload(alert())
    with served(stack) as app:
        first = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=payload).json()
        [receipt] = first["alerts"]
        assert receipt["outcome"] == "started" and receipt["resource"] == "cache", receipt
        [paused] = wait_for(lambda: waiting(app), "the alert's incident to wait for approval")
        assert paused["incident_id"] == receipt["incident_id"]
        for _ in range(3):  # Alertmanager's repeat_interval: the same alert again
            again = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=payload).json()
            assert again["alerts"][0]["outcome"] == "deduplicated", again
            assert again["alerts"][0]["incident_id"] == paused["incident_id"]
        assert len(incidents(app)) == 1
        record = app.get(f"/api/incidents/{paused['incident_id']}")
        assert [a["outcome"] for a in record["alerts"]] == ["ran", "deduplicated", "deduplicated", "deduplicated"]
        [request] = app.get("/api/approvals")
        answer = {"decision": "approve", "digests": request["digests"], "comment": "via the API"}
        done = app.client.post(f"/api/approvals/{paused['incident_id']}", headers=bearer(APPROVE), json=answer)
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "resolved"
        record = app.get(f"/api/incidents/{paused['incident_id']}")
        assert record["status"] == "resolved" and [a["decided_by"] for a in record["approvals"]] == ["alice"]
        timeline = [entry["event"] for entry in record["report"]["timeline"]]
        assert timeline[0] == "alert RedisMemoryHigh from alertmanager; probed cache", timeline
        # Still firing a moment later (Alertmanager has not seen the fix yet): inside the cooldown.
        late = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=payload).json()
        assert late["alerts"][0]["outcome"] == "cooldown", late
        resolved = alertmanager_payload(alert(status="resolved"), status="resolved")
        gone = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=resolved).json()
        assert gone["alerts"][0]["outcome"] == "resolved" and len(incidents(app)) == 1


def test_alerts_that_name_no_resource_are_recorded_as_unrouted(stack: Stack) -> None:
    with served(stack) as app:
        payload = alertmanager_payload(alert(resource=None), alert(resource="nosuch", fingerprint="fp-2"))
        receipts = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=payload).json()["alerts"]
        assert [r["outcome"] for r in receipts] == ["unrouted", "unrouted"]
        assert "no alert route matches" in receipts[0]["detail"] and "'nosuch'" in receipts[1]["detail"]
        assert len(app.get("/api/alerts")) == 2 and incidents(app) == []
    # The same record on the command line.
    listed = subprocess.run(
        [sys.executable, "-m", "opsgraph", "incidents", "alerts", "--json", "--state-dir", str(stack.state_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["outcome"], r["name"], r["fingerprint"]) for r in rows] == [
        ("unrouted", "RedisMemoryHigh", "fp-2"),
        ("unrouted", "RedisMemoryHigh", "fp-1"),
    ]


def test_the_generic_webhook_maps_by_resource_and_dedupes(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    body = {"source": "grafana", "alerts": [{"name": "CacheFull", "resource": "cache", "labels": {"team": "shop"}}]}
    with served(stack) as app:
        first = app.client.post("/alerts/webhook", headers=bearer(INGEST), json=body).json()["alerts"][0]
        assert first["outcome"] == "started"
        wait_for(lambda: waiting(app), "the webhook's incident to wait for approval")
        second = app.client.post("/alerts/webhook", headers=bearer(INGEST), json=body).json()["alerts"][0]
        assert second["outcome"] == "deduplicated" and second["fingerprint"] == first["fingerprint"]
        bad = app.client.post("/alerts/webhook", headers=bearer(INGEST), json={"source": "has space", "alerts": []})
        assert bad.status_code == 422 and "body.source" in bad.json()["detail"]


def test_an_api_approval_resumes_a_watcher_incident_once(stack: Stack) -> None:
    """Two callers approve at once an incident the watcher's own probe opened: one runs it, the other is told."""
    fill_redis_memory(stack.inventory.get("cache"))
    with served(stack, probing=True) as app:
        [paused] = wait_for(lambda: waiting(app), "the watcher to open an incident that waits")
        [request] = app.get("/api/approvals")
        answer = {"decision": "approve", "digests": request["digests"]}
        answers: list[Any] = []
        start = threading.Barrier(2)

        def approve() -> None:
            start.wait()
            answers.append(
                app.client.post(f"/api/approvals/{paused['incident_id']}", headers=bearer(APPROVE), json=answer)
            )

        threads = [threading.Thread(target=approve) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        [lost] = [r for r in answers if r.status_code == 409]
        assert "not" in lost.json()["detail"]
        ran = [a for a in app.runtime.operations.ledger.actions(paused["incident_id"]) if a["phase"] == "result"]
        assert [a["tool"] for a in ran].count("redis_scale_memory") == 1


def test_approving_other_digests_records_nothing(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with served(stack) as app:
        started = app.client.post("/api/resources/cache/fix", headers=bearer(APPROVE))
        assert started.status_code == 200 and started.json()["outcome"] == "awaiting_approval", started.text
        incident_id = started.json()["incident_id"]
        wrong = {"decision": "approve", "digests": ["0" * 16]}
        response = app.client.post(f"/api/approvals/{incident_id}", headers=bearer(APPROVE), json=wrong)
        assert response.status_code == 409 and "nothing recorded" in response.json()["detail"]
        assert app.runtime.operations.ledger.approvals(incident_id) == []
        assert app.client.post("/api/approvals/inc-nosuch", headers=bearer(APPROVE), json=wrong).status_code == 404
        assert app.client.post("/api/resources/nosuch/fix", headers=bearer(APPROVE)).status_code == 404


def test_reads_show_resources_tools_and_a_scan(stack: Stack) -> None:
    with served(stack, probing=True) as app:
        wait_for(lambda: app.get("/api/resources")[0]["health"], "the watcher's first sweep")
        [cache] = app.get("/api/resources")
        assert cache["name"] == "cache" and cache["health"]["health"] == "healthy" and cache["open_incident"] is None
        names = {tool["name"] for tool in app.get("/api/tools")}
        assert {"redis_info", "redis_scale_memory"} <= names
        [snapshot] = app.client.post("/api/scan", headers=bearer(READ)).json()
        assert snapshot["resource"] == "cache"
        assert app.client.get("/openapi.json").json()["info"]["title"] == "OpsGraph"
        docs = app.client.get("/docs")  # the browsable API the README points at
        assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_healthz_turns_503_when_the_watcher_stops_sweeping_or_dies(stack: Stack) -> None:
    with served(stack, probing=True, interval_s=120) as app:  # one sweep now, the next long after the test
        wait_for(lambda: app.runtime.watcher.last_sweep_at, "the watcher's first sweep")
        ok = app.client.get("/healthz")
        assert ok.status_code == 200 and ok.json()["status"] == "ok", ok.text
        app.runtime.watcher.last_sweep_at = time.time() - 600  # a sweep stuck for ten minutes
        stale = app.client.get("/healthz")
        assert stale.status_code == 503 and stale.json()["last_sweep_age_s"] >= 600, stale.text
        app.runtime.watcher_alive = lambda: False  # the watcher thread crashed
        app.runtime.watcher.last_sweep_at = time.time()
        dead = app.client.get("/healthz")
        assert dead.status_code == 503 and dead.json()["watcher_alive"] is False, dead.text


def test_with_wait_false_an_approval_is_accepted_at_once_and_runs_on(stack: Stack) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with served(stack) as app:
        accepted = app.client.post("/api/resources/cache/fix", params={"wait": "false"}, headers=bearer(APPROVE))
        assert accepted.status_code == 202, accepted.text
        incident_id = accepted.json()["incident_id"]
        assert accepted.json()["follow"] == f"/api/incidents/{incident_id}"
        wait_for(lambda: app.get("/api/approvals"), "the background fix to wait for approval")
        [request] = app.get("/api/approvals")
        answer = {"decision": "approve", "digests": request["digests"]}
        later = app.client.post(f"/api/approvals/{incident_id}?wait=false", headers=bearer(APPROVE), json=answer)
        assert later.status_code == 202, later.text
        record = wait_for(
            lambda: (r := app.get(f"/api/incidents/{incident_id}"))["status"] == "resolved" and r,
            "the approved incident to resolve in the background",
        )
        assert [a["decided_by"] for a in record["approvals"]] == ["alice"]
        # Checked before anything runs, as with wait: an answer to what no longer waits is refused at once.
        wrong = app.client.post(
            f"/api/approvals/{incident_id}?wait=false", headers=bearer(APPROVE), json={**answer, "digests": ["x"]}
        )
        assert wrong.status_code == 409


def test_an_alert_the_stopped_watcher_cannot_start_gets_a_503_and_its_retry_starts_afresh(stack: Stack) -> None:
    """Alertmanager retries a 5xx: the row says not_started, so the retry is not taken for a duplicate."""
    fill_redis_memory(stack.inventory.get("cache"))
    with served(stack, ready_s=0.5) as app:
        wait_for(lambda: app.runtime.watcher.last_sweep_at, "the watcher's first round")  # its graph is up
        app.runtime.watcher._ready.clear()  # as after the watcher thread ended
        refused = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=alertmanager_payload(alert()))
        assert refused.status_code == 503, refused.text
        assert refused.json()["alerts"][0]["outcome"] == "not_started"
        assert incidents(app) == []
        app.runtime.watcher._ready.set()  # the watcher is back
        retried = app.client.post("/alerts/alertmanager", headers=bearer(INGEST), json=alertmanager_payload(alert()))
        assert retried.status_code == 200 and retried.json()["alerts"][0]["outcome"] == "started", retried.text
        wait_for(lambda: waiting(app), "the retried alert's incident to wait for approval")
