"""The continuous detector behind `opsgraph watch`.

Every interval it probes the inventory; each unhealthy resource whose fingerprint
(resource + symptom) has no open incident, no run in flight and no incident closed
within the cooldown starts one incident graph. One fault therefore yields one
incident, not a storm. Runs go to a small thread pool so a slow verification on one
resource does not blind the watcher to the others. Plans that need a human pause in
their checkpoint (`opsgraph approve ID` resumes them from any process).

Before every sweep it also finishes what a killed process left (`reconcile`): steps
in doubt are settled by looking at their target, graphs stopped between nodes run on
from their checkpoint, and the ledger's claims stop any repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from opsgraph.graph.context import Context
from opsgraph.graph.fixing import summary
from opsgraph.graph.nodes.detector import fingerprint, new_incident_id
from opsgraph.graph.reconcile import reconcile
from opsgraph.graph.runtime import (
    IncidentBusy,
    IncidentGraph,
    NodeListener,
    RunResult,
    continue_incident,
    incident_graph,
    start_incident,
)
from opsgraph.tools.probes import probe_all
from opsgraph.tools.snapshot import Health, Snapshot

log = logging.getLogger(__name__)


class Say(Protocol):
    """Where the watcher reports an event: a sentence, its level (info, warning, error) and
    fields that name what it is about (resource, incident_id, node…) for structured logs."""

    def __call__(self, text: str, level: str = "info", **fields: Any) -> None: ...


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    interval_s: float = 5.0
    cooldown_s: float = 60.0  # after an incident closes, the same fingerprint waits this long
    max_parallel: int = 4


class Watcher:
    def __init__(self, context: Context, settings: WatchSettings, say: Say) -> None:
        self._context = context
        self._settings = settings
        self._say = say
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self.finished: list[RunResult] = []
        self._held_said: set[str] = set()  # data-safety holds already reported (once each)

    def run(self, stop: threading.Event) -> None:
        """Watch until `stop` is set; then let in-flight incident runs finish before returning."""
        with (
            incident_graph(Path(self._context.state_dir)) as graph,
            ThreadPoolExecutor(self._settings.max_parallel, thread_name_prefix="incident") as pool,
        ):
            while not stop.is_set():
                self._repair(graph, pool)
                for snapshot in probe_all(self._context.inventory):
                    if snapshot.health is not Health.HEALTHY:
                        self._consider(graph, pool, snapshot)
                stop.wait(self._settings.interval_s)
            self._say("stopping: waiting for incident runs in flight")
        self._say("stopped")

    def _repair(self, graph: IncidentGraph, pool: ThreadPoolExecutor) -> None:
        """Finish what a killed process left: settle steps in doubt, fix the ledger, run unfinished graphs on."""
        repairs, unfinished = reconcile(graph, self._context)
        for repair in repairs:
            if repair.action != "unfinished":
                self._say(
                    f"{repair.incident_id}: repaired ({repair.action}): {repair.detail}", incident_id=repair.incident_id
                )
        for incident_id in unfinished:
            with self._lock:
                if incident_id in self._in_flight:
                    continue
                self._in_flight.add(incident_id)
            self._say(f"resuming {incident_id} from its last checkpoint", incident_id=incident_id)
            pool.submit(self._guarded, incident_id, partial(self._continue, graph, incident_id))

    def _consider(self, graph: IncidentGraph, pool: ThreadPoolExecutor, snapshot: Snapshot) -> None:
        assert snapshot.symptom is not None
        key = fingerprint(snapshot.resource, snapshot.symptom)
        with self._lock:
            if key in self._in_flight:
                return
        ledger = self._context.ledger
        if ledger.open_incident_for(key) is not None:
            return
        if (holder := ledger.held_by(snapshot.resource)) is not None:
            if holder not in self._held_said:
                self._held_said.add(holder)
                self._say(
                    f"{snapshot.resource}: {snapshot.health}, but held by data-safety failure {holder}: "
                    f"no action until `opsgraph incidents release {holder}`",
                    "warning",
                    resource=snapshot.resource,
                    incident_id=holder,
                )
            return
        closed_at = ledger.last_closed_at(key)
        if closed_at is not None and time.time() - closed_at < self._settings.cooldown_s:
            return
        incident_id = new_incident_id(snapshot.resource)
        self._say(
            f"{snapshot.resource}: {snapshot.health} ({'; '.join(snapshot.reasons)}) -> {incident_id}",
            "warning",
            resource=snapshot.resource,
            incident_id=incident_id,
            symptom=snapshot.symptom,
        )
        with self._lock:
            self._in_flight.add(key)

        def run() -> RunResult:
            return start_incident(
                graph, self._context, snapshot.resource, incident_id, snapshot.taken_at, self._progress(incident_id)
            )

        pool.submit(self._guarded, key, run)

    def _continue(self, graph: IncidentGraph, incident_id: str) -> RunResult:
        return continue_incident(graph, self._context, incident_id, self._progress(incident_id))

    def _progress(self, incident_id: str) -> NodeListener:
        """Each node's timeline entries as events naming the incident: runs go on in parallel."""

        def report(node: str, update: dict[str, Any]) -> None:
            for entry in update.get("timeline", []):
                self._say(entry["event"], node=node, incident_id=incident_id)

        return report

    def _guarded(self, key: str, run: Callable[[], RunResult]) -> None:
        """Run one incident; a crash is reported loudly but does not stop the watcher."""
        try:
            result = run()
        except IncidentBusy as busy:  # another process drives it: that one reports its outcome
            self._say(f"{key}: {busy}; leaving it to that process", fingerprint=key)
            return
        except Exception as error:  # logged with its traceback; the checkpoint keeps the state
            log.exception("incident run for %s crashed", key)
            self._say(
                f"{key}: incident run crashed ({type(error).__name__}: {error}); its checkpoint is kept",
                "error",
                fingerprint=key,
            )
            return
        finally:
            with self._lock:
                self._in_flight.discard(key)
        record = summary(result)
        self.finished.append(result)
        self._say(
            f"{record['incident_id']}: {record['outcome']} {record.get('outcome_detail') or ''}".rstrip(),
            "info" if record.get("resolved") else "warning",
            incident_id=record["incident_id"],
            outcome=record["outcome"],
        )
