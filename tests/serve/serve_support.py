"""`opsgraph serve`'s app in this process, on a real local stack: the watcher thread, the intake, the API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from support import Stack

from opsgraph.graph.watch import Watcher, WatchSettings
from opsgraph.operations import Operations
from opsgraph.serve.alerts import AlertIntake
from opsgraph.serve.api import ServeRuntime, create_app
from opsgraph.serve.auth import Tokens

READ = "read-token-0123456789"
INGEST = "ingest-token-0123456789"
APPROVE = "approve-token-0123456789"
TOKENS = f"grafana:read:{READ},alertmanager:ingest:{INGEST},alice:approve:{APPROVE}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Served:
    client: TestClient
    runtime: ServeRuntime
    stack: Stack

    def get(self, path: str, token: str = READ, **params: Any) -> Any:
        response = self.client.get(path, headers=bearer(token), params=params)
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def served(
    stack: Stack,
    probing: bool = False,
    cooldown_s: float = 60.0,
    interval_s: float = 0.2,
    ready_s: float = 30.0,
    **context: Any,
) -> Iterator[Served]:
    """The app on `stack` with a running watcher thread (probing every `interval_s` when `probing`)."""
    ctx = stack.context(**context)
    say_lines: list[str] = []

    def say(text: str, level: str = "info", **fields: Any) -> None:
        say_lines.append(text)

    watcher = Watcher(ctx, WatchSettings(interval_s=interval_s, cooldown_s=cooldown_s, ready_s=ready_s), say)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), kwargs={"probing": probing}, daemon=True)
    background = ThreadPoolExecutor(2, thread_name_prefix="api-run")
    runtime = ServeRuntime(
        operations=Operations(ctx),
        watcher=watcher,
        intake=AlertIntake(ctx, watcher, cooldown_s, say),
        tokens=Tokens(TOKENS),
        metrics=None,
        probing=probing,
        interval_s=interval_s,
        watcher_alive=thread.is_alive,
        started_at=time.time(),
        background=background,
        say=say,
    )
    thread.start()
    try:
        with TestClient(create_app(runtime)) as client:
            yield Served(client, runtime, stack)
    finally:
        background.shutdown(wait=True)
        stop.set()
        thread.join(timeout=120)


def alertmanager_payload(*alerts: dict[str, Any], status: str = "firing", receiver: str = "opsgraph") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) around `alerts`."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="RedisMemoryHigh"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": list(alerts),
    }


def alert(
    resource: str | None = "cache", fingerprint: str = "fp-1", status: str = "firing", **labels: str
) -> dict[str, Any]:
    all_labels = {"alertname": "RedisMemoryHigh", **labels}
    if resource is not None:
        all_labels["resource"] = resource
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": "Redis memory above 90 %"},
        "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.invalid/graph",
        "fingerprint": fingerprint,
    }
