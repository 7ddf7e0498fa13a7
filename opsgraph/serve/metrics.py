"""`/metrics` for `opsgraph serve`: OpsGraph's own figures in the Prometheus text format.

Two sources, one private registry (several apps may live in one process, as in tests):

- **the ledger**, read at every scrape — read-only, in one SQLite read transaction, aggregated
  in SQL: incidents and their MTTD/MTTR, actions, approvals waiting, reasoning, alerts received,
  notifications. The figures so cover incidents whichever process drove them (the watcher,
  `opsgraph approve`, the chat, the API) and survive restarts: a counter is a count of ledger
  rows, not of the events this process happened to see.
- **the watcher** of this process, through `ServeMetrics.swept`: probe sweep durations, probe
  errors, each resource's health, the time of the last sweep.

`increase()` sees a series grow, never a series appear. The counters the shipped alert rules
(`deploy/prometheus/opsgraph-rules.yml`) use that way are therefore label-free and exposed at 0
from the first scrape: `opsgraph_incidents_escalated_total`, `opsgraph_data_safety_failures_total`,
`opsgraph_reasoning_fallbacks_total`, `opsgraph_notification_failures_total`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from opsgraph.graph.ledger import DATA_SAFETY_FAILURE, OPEN_STATUSES, Ledger
from opsgraph.tools.snapshot import Health, Snapshot

# MTTD is a probe interval or two; MTTR runs from a settle window to an approval that waited an hour.
INCIDENT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
SWEEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# What an alert's `outcome` says when it started nothing new (opsgraph.serve.alerts).
DEDUPLICATED_OUTCOMES = ("deduplicated", "attached", "cooldown")
# A probe that could not read its resource at all (opsgraph.tools.probes.grading.unreachable).
PROBE_ERROR_SUFFIXES = ("_unreachable", "_auth_failed")
# A delivery's final states (a row says `sending` while it is being tried).
NOTIFICATION_SETTLED = ("sent", "failed")


def probe_error(snapshot: Snapshot) -> bool:
    """Whether the probe got no reading: the resource did not answer or refused OpsGraph's credentials."""
    return snapshot.health is Health.FAILED and (snapshot.symptom or "").endswith(PROBE_ERROR_SUFFIXES)


class ServeMetrics:
    """The registry behind `/metrics`: ledger figures at scrape time, and what `swept` was told.

    `clock` is "now" for the approval's age and the sweep's time (time.time; tests pin it).
    """

    def __init__(self, ledger: Ledger, clock: Callable[[], float] | None = None) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock or time.time
        self._last_sweep = _LastSweep()
        self._sweep_seconds = Histogram(
            "opsgraph_probe_sweep_seconds",
            "How long one watcher sweep took to probe every resource of the inventory.",
            buckets=SWEEP_BUCKETS,
            registry=self.registry,
        )
        self._probe_seconds = Histogram(
            "opsgraph_probe_seconds",
            "How long one resource's probe took, by resource kind.",
            ["kind"],
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self._probe_errors = Counter(
            "opsgraph_probe_errors",
            "Probes that got no reading: the resource did not answer, or refused OpsGraph's credentials.",
            ["resource", "kind"],
            registry=self.registry,
        )
        Info("opsgraph_build", "The running OpsGraph.", registry=self.registry).info({"version": version("opsgraph")})
        self.registry.register(_LedgerCollector(ledger.path, self._clock))
        self.registry.register(self._last_sweep)

    def swept(self, snapshots: list[Snapshot], seconds: float, probe_seconds: list[float] | None = None) -> None:
        """One watcher sweep is done: every resource's snapshot, how long probing them all took, and
        (when known) how long each probe took, in the snapshots' order."""
        self._sweep_seconds.observe(seconds)
        if probe_seconds is not None:
            for snapshot, took in zip(snapshots, probe_seconds, strict=True):
                self._probe_seconds.labels(f"{snapshot.kind}").observe(took)
        for snapshot in snapshots:
            errors = self._probe_errors.labels(snapshot.resource, f"{snapshot.kind}")  # at 0 before its first error
            if probe_error(snapshot):
                errors.inc()
        health = [(s.resource, f"{s.kind}", s.health is Health.HEALTHY) for s in snapshots]
        self._last_sweep.sweep = _Sweep(at=self._clock(), health=health)  # replaced whole: a scrape reads one sweep

    def render(self) -> tuple[bytes, str]:
        """The `/metrics` response: body and content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True)
class _Sweep:
    at: float
    health: list[tuple[str, str, bool]]  # resource, kind, healthy


class _LastSweep(Collector):
    """The last sweep's verdicts; nothing before the first one (a serve without a watcher says nothing)."""

    def __init__(self) -> None:
        self.sweep: _Sweep | None = None

    def collect(self) -> Iterator[Metric]:
        sweep = self.sweep
        if sweep is None:
            return
        last = GaugeMetricFamily(
            "opsgraph_watcher_last_sweep_timestamp_seconds", "When the watcher last finished probing the inventory."
        )
        last.add_metric([], sweep.at)
        yield last
        healthy = GaugeMetricFamily(
            "opsgraph_resource_healthy",
            "1 if the resource's last probe graded it healthy, else 0 (degraded, failed or unreachable).",
            labels=["resource", "kind"],
        )
        for resource, kind, ok in sweep.health:
            healthy.add_metric([resource, kind], 1.0 if ok else 0.0)
        yield healthy


class _LedgerCollector(Collector):
    """Every ledger-derived family, from one read transaction (the figures agree with each other)."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self._uri = f"{path.resolve().as_uri()}?mode=ro"
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        with closing(sqlite3.connect(self._uri, uri=True, timeout=10)) as conn:
            conn.execute("BEGIN")  # one snapshot of the file for the whole scrape (WAL readers do not block writers)
            yield from _incidents(conn)
            yield from _approvals(conn, self._clock())
            yield from _actions(conn)
            yield from _reasoning(conn)
            yield from _alerts(conn)
            yield from _notifications(conn)


def _rows(conn: sqlite3.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return conn.execute(sql, args).fetchall()


def _incidents(conn: sqlite3.Connection) -> Iterator[Metric]:
    closed = CounterMetricFamily(
        "opsgraph_incidents",
        "Incidents closed, by outcome (resolved, escalated, rejected, data_safety_failure, ...) and symptom.",
        labels=["outcome", "symptom"],
    )
    escalated = data_safety = 0
    # The report's outcome, not the row's status: releasing a data-safety failure changes the status only.
    for outcome, symptom, count in _rows(
        conn,
        "SELECT coalesce(json_extract(report, '$.outcome'), status), symptom, count(*) FROM incidents"
        " WHERE closed_at IS NOT NULL GROUP BY 1, 2",
    ):
        closed.add_metric([outcome, symptom], count)
        escalated += count if outcome == "escalated" else 0
        data_safety += count if outcome == DATA_SAFETY_FAILURE else 0
    yield closed
    yield _counter(
        "opsgraph_incidents_escalated", "Incidents OpsGraph handed to a human (outcome escalated).", escalated
    )
    yield _counter(
        "opsgraph_data_safety_failures",
        "Incidents closed because a step changed data unexpectedly (the resource is held until released).",
        data_safety,
    )

    open_now = GaugeMetricFamily("opsgraph_incidents_open", "Incidents not closed yet, by status.", labels=["status"])
    counts = dict(_rows(conn, "SELECT status, count(*) FROM incidents WHERE closed_at IS NULL GROUP BY status"))
    for status in OPEN_STATUSES:
        open_now.add_metric([status], counts.get(status, 0))
    yield open_now

    yield _histogram(
        conn,
        "opsgraph_incident_mttd_seconds",
        "Time to detect of closed incidents: fault start (or first unhealthy probe) to incident opened.",
        "$.mttd_s",
    )
    yield _histogram(
        conn,
        "opsgraph_incident_mttr_seconds",
        "Time to recover of resolved incidents: incident opened to the first probe of the healthy window that held.",
        "$.mttr_s",
    )


def _histogram(conn: sqlite3.Connection, name: str, documentation: str, path: str) -> HistogramMetricFamily:
    """A histogram of one number of the closed incidents' reports, counted per bucket in SQL."""
    per_bucket = ", ".join(f"total(v <= {bound!r})" for bound in INCIDENT_BUCKETS)
    row = conn.execute(
        f"SELECT count(v), total(v), {per_bucket} FROM"
        " (SELECT json_extract(report, ?) AS v FROM incidents WHERE closed_at IS NOT NULL) WHERE v IS NOT NULL",
        (path,),
    ).fetchone()
    count, total, *cumulative = row
    buckets = [(f"{bound}", n) for bound, n in zip(INCIDENT_BUCKETS, cumulative, strict=True)]
    return HistogramMetricFamily(name, documentation, buckets=[*buckets, ("+Inf", count)], sum_value=total)


def _approvals(conn: sqlite3.Connection, now: float) -> Iterator[Metric]:
    # The request's age is its plan's: an incident waits on the newest plan it recorded.
    pending, oldest = conn.execute(
        "SELECT count(*), min((SELECT created_at FROM plans p WHERE p.incident_id = i.incident_id"
        " ORDER BY plan_no DESC LIMIT 1)) FROM incidents i WHERE status = 'awaiting_approval'"
    ).fetchone()
    yield _gauge("opsgraph_approvals_pending", "Incidents whose plan waits for an operator's approval.", pending)
    yield _gauge(
        "opsgraph_approval_oldest_age_seconds",
        "How long the oldest waiting approval has waited (its plan's age); 0 when none waits.",
        max(now - oldest, 0.0) if oldest is not None else 0.0,
    )


def _actions(conn: sqlite3.Connection) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "opsgraph_actions", "Tool calls that finished, by tool and status (ok, error).", labels=["tool", "status"]
    )
    for tool, status, count in _rows(
        conn, "SELECT tool, status, count(*) FROM actions WHERE phase = 'result' GROUP BY 1, 2"
    ):
        family.add_metric([tool, status], count)
    yield family


# One row per reasoning call. A report carries them as `reasoning_log` (the graph state's list); a report
# without it has per-node totals only, counted as one call per node of its `tokens.by_node`.
_CALLS = """
WITH calls (backend, node, input_tokens, output_tokens) AS (
    SELECT json_extract(e.value, '$.backend'), json_extract(e.value, '$.node'),
           json_extract(e.value, '$.tokens.input_tokens'), json_extract(e.value, '$.tokens.output_tokens')
    FROM incidents i, json_each(i.report, '$.reasoning_log') e
    WHERE i.closed_at IS NOT NULL
    UNION ALL
    SELECT json_extract(i.report, '$.reasoning_backend'), n.key,
           json_extract(n.value, '$.input_tokens'), json_extract(n.value, '$.output_tokens')
    FROM incidents i, json_each(i.report, '$.tokens.by_node') n
    WHERE i.closed_at IS NOT NULL AND json_type(i.report, '$.reasoning_log') IS NULL
)
SELECT backend, node, count(*), total(input_tokens), total(output_tokens) FROM calls GROUP BY 1, 2
"""


def _reasoning(conn: sqlite3.Connection) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "opsgraph_reasoning_calls",
        "Reasoning calls of closed incidents, by the backend that answered and the graph node that asked.",
        labels=["backend", "node"],
    )
    tokens = CounterMetricFamily(
        "opsgraph_reasoning_tokens",
        "Model tokens of closed incidents, by answering backend and direction (input, output).",
        labels=["backend", "direction"],
    )
    by_direction: dict[tuple[str, str], float] = defaultdict(float)
    for backend, node, count, input_tokens, output_tokens in _rows(conn, _CALLS):
        calls.add_metric([backend, node], count)
        by_direction[backend, "input"] += input_tokens
        by_direction[backend, "output"] += output_tokens
    for labels, value in sorted(by_direction.items()):
        tokens.add_metric(list(labels), value)
    yield calls
    yield tokens
    [(fallbacks,)] = _rows(
        conn,
        "SELECT total(json_array_length(report, '$.fallbacks')) FROM incidents WHERE closed_at IS NOT NULL",
    )
    yield _counter(
        "opsgraph_reasoning_fallbacks",
        "Reasoning calls whose model answer was replaced by the runbook's (error, timeout, budget, bad reply).",
        fallbacks,
    )


def _alerts(conn: sqlite3.Connection) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "opsgraph_alerts_received",
        "Alerts received by webhook, by source and alert status (firing, resolved).",
        labels=["source", "status"],
    )
    for source, status, count in _rows(conn, "SELECT source, status, count(*) FROM alerts GROUP BY 1, 2"):
        received.add_metric([source, status], count)
    yield received
    deduplicated = CounterMetricFamily(
        "opsgraph_alerts_deduplicated",
        "Alerts that started no new incident run: deduplicated, attached to an open incident, or cooling down.",
        labels=["source"],
    )
    marks = ", ".join("?" for _ in DEDUPLICATED_OUTCOMES)
    for source, count in _rows(
        conn, f"SELECT source, total(outcome IN ({marks})) FROM alerts GROUP BY 1", *DEDUPLICATED_OUTCOMES
    ):
        deduplicated.add_metric([source], count)  # at 0 from the source's first alert
    yield deduplicated


def _notifications(conn: sqlite3.Connection) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "opsgraph_notifications",
        "Notification deliveries settled, by channel and final status (sent, failed).",
        labels=["channel", "status"],
    )
    failed = 0
    for channel, status, count in _rows(
        conn,
        "SELECT channel, status, count(*) FROM notifications WHERE status IN (?, ?) GROUP BY 1, 2",
        *NOTIFICATION_SETTLED,
    ):
        family.add_metric([channel, status], count)
        failed += count if status == "failed" else 0
    yield family
    yield _counter("opsgraph_notification_failures", "Notification deliveries that failed, any channel.", failed)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
