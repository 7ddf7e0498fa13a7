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

A fault it does not act on is never ignored silently, and never reported once per probe:
each suppression — OpsGraph paused, the resource held (data-safety failure, crash loop,
spent cap), grouped under the incident of a resource it depends on, its fingerprint
cooling down, the global action budget spent — is logged once with why, and again only
when the reason changes or after the resource was healthy in between.
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

from opsgraph.graph.caps import Limits, global_refusal
from opsgraph.graph.context import Context
from opsgraph.graph.control import Controls
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
from opsgraph.tools.probes import timed_probes
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
    ready_s: float = 30.0  # how long an alert's incident waits for the watcher's graph to be up (serve's start)


SweepListener = Callable[[list[Snapshot], float, list[float]], None]  # snapshots, sweep s, each probe's s
RunListener = Callable[[RunResult | None], None]


class Watcher:
    def __init__(
        self, context: Context, settings: WatchSettings, say: Say, on_sweep: SweepListener | None = None
    ) -> None:
        self._context = context
        self._settings = settings
        self._say = say
        self._on_sweep = on_sweep
        self._in_flight: set[str] = set()
        self._running: dict[str, str] = {}  # resource -> the incident this watcher runs for it
        self._alerted: dict[str, str] = {}  # resource -> the incident an alert asked for, while it runs
        self._lock = threading.Lock()
        self.finished: list[RunResult] = []
        self._said: dict[str, str] = {}  # resource -> the suppression last reported for it (once each)
        self.latest: dict[str, Snapshot] = {}  # resource -> its last probe (the API's resource health)
        self.last_sweep_at: float | None = None
        self._engine: tuple[IncidentGraph, ThreadPoolExecutor] | None = None
        self._ready = threading.Event()

    def run(self, stop: threading.Event, probing: bool = True) -> None:
        """Watch until `stop` is set; then let in-flight incident runs finish before returning.

        Without `probing` (alerts are the detector, e.g. from Alertmanager) it still finishes what a
        killed process left, and runs the incidents `start_alerted` hands it.
        """
        with (
            incident_graph(Path(self._context.state_dir)) as graph,
            ThreadPoolExecutor(self._settings.max_parallel, thread_name_prefix="incident") as pool,
        ):
            self._engine = (graph, pool)
            self._ready.set()
            try:
                while not stop.is_set():
                    self._repair(graph, pool)
                    if probing:
                        self._sweep(graph, pool)
                    self.last_sweep_at = time.time()
                    stop.wait(self._settings.interval_s)
                self._say("stopping: waiting for incident runs in flight")
            finally:
                self._ready.clear()
        self._say("stopped")

    def _sweep(self, graph: IncidentGraph, pool: ThreadPoolExecutor) -> None:
        started = time.monotonic()
        timed = timed_probes(self._context.inventory)
        snapshots = [snapshot for snapshot, _ in timed]
        if self._on_sweep is not None:
            self._on_sweep(snapshots, time.monotonic() - started, [seconds for _, seconds in timed])
        self.latest = {snapshot.resource: snapshot for snapshot in snapshots}
        unhealthy = {s.resource: s for s in snapshots if s.health is not Health.HEALTHY}
        for snapshot in snapshots:
            if snapshot.health is Health.HEALTHY:
                self._said.pop(snapshot.resource, None)  # a suppression episode ends with health
        # Roots first, so that a dependent failing in the same round names the root's incident.
        for snapshot in sorted(unhealthy.values(), key=lambda s: len(self._needs(s.resource))):
            self._consider(graph, pool, snapshot, unhealthy)

    # incidents an alert asks for (opsgraph.serve.alerts) ----------------------
    def reserve(self, resource: str, incident_id: str) -> str | None:
        """Book `resource` for an alert's incident; the incident already running on it instead, if any."""
        with self._lock:
            running = self._running.get(resource)
            if running is not None:
                return running
            self._running[resource] = incident_id
            self._alerted[resource] = incident_id
            return None

    def unreserve(self, resource: str, incident_id: str) -> None:
        with self._lock:
            if self._alerted.get(resource) == incident_id:
                del self._alerted[resource]
                self._running.pop(resource, None)

    def is_running(self, incident_id: str) -> bool:
        with self._lock:
            return incident_id in self._running.values() or incident_id in self._in_flight

    def start_alerted(
        self, resource: str, incident_id: str, alert: dict[str, Any], fault_started_at: float, on_done: RunListener
    ) -> None:
        """Run the reserved incident with the alert as evidence, on the watcher's pool; `on_done` hears its end
        (None when the run could not finish: busy elsewhere or crashed, its checkpoint kept)."""
        if not self._ready.wait(timeout=self._settings.ready_s) or self._engine is None:
            self.unreserve(resource, incident_id)
            raise RuntimeError("the watcher is not running: no incident graph to start the alert's incident on")
        graph, pool = self._engine
        with self._lock:
            self._in_flight.add(incident_id)

        def run() -> RunResult:
            result: RunResult | None = None
            try:
                result = start_incident(
                    graph, self._context, resource, incident_id, fault_started_at, self._progress(incident_id), alert
                )
                return result
            finally:
                self.unreserve(resource, incident_id)
                on_done(result)

        pool.submit(self._guarded, incident_id, run)

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

    def _needs(self, resource: str) -> list[str]:
        """Every resource `resource` depends on, directly or through others (cycles cut)."""
        inventory = self._context.inventory
        found: list[str] = []
        todo = list(inventory.get(resource).dependencies())
        while todo:
            name = todo.pop(0)
            if name not in found and name != resource and inventory.has(name):
                found.append(name)
                todo.extend(inventory.get(name).dependencies())
        return found

    def _say_once(self, snapshot: Snapshot, why_key: str, text: str, **fields: Any) -> None:
        """Report a fault OpsGraph does not act on: once per resource and reason."""
        if self._said.get(snapshot.resource) == why_key:
            return
        self._said[snapshot.resource] = why_key
        self._say(f"{snapshot.resource}: {snapshot.health}, {text}", "warning", resource=snapshot.resource, **fields)

    def _root_of(self, snapshot: Snapshot, unhealthy: dict[str, Snapshot]) -> tuple[str, str | None] | None:
        """The dependency this fault is grouped under — (resource, its incident or None) — if any."""
        ledger = self._context.ledger
        controls = Controls(ledger)
        candidates: list[tuple[str, str | None]] = []
        for name in self._needs(snapshot.resource):
            with self._lock:
                incident_id = self._running.get(name)
            incident_id = incident_id or ledger.open_incident_on(name)
            if incident_id is None and (stop := controls.stop_for(name)) is not None:
                incident_id = stop.incident_id  # the escalation that holds the root
            if incident_id is not None:
                return name, incident_id
            if name in unhealthy:
                candidates.append((name, None))
        return candidates[0] if candidates else None

    def _suppressed(self, snapshot: Snapshot, key: str, unhealthy: dict[str, Snapshot]) -> bool:
        """Whether this fault is not acted on now; each reason is reported once (see the module doc)."""
        assert snapshot.symptom is not None
        ledger = self._context.ledger
        if (stop := Controls(ledger).stop_for(snapshot.resource)) is not None:
            self._say_once(snapshot, f"stop:{stop.scope}:{stop.at}", f"not acted on: {stop.describe()}")
            return True
        if (holder := ledger.held_by(snapshot.resource)) is not None:
            self._say_once(
                snapshot,
                f"held:{holder}",
                f"but held by data-safety failure {holder}: no action until `opsgraph incidents release {holder}`",
                incident_id=holder,
            )
            return True
        if (root := self._root_of(snapshot, unhealthy)) is not None:
            name, incident_id = root
            if incident_id is None:
                self._say_once(snapshot, f"waits:{name}", f"not acted on: it depends on {name}, which is failing")
            else:
                Controls(ledger).group(incident_id, snapshot.resource, snapshot.symptom)
                self._say_once(snapshot, f"grouped:{incident_id}", f"grouped under {incident_id} ({name})",
                               incident_id=incident_id)  # fmt: skip
            return True
        closed_at = ledger.last_closed_at(key)
        if closed_at is not None and (left := self._settings.cooldown_s - (time.time() - closed_at)) > 0:
            self._say_once(
                snapshot,
                f"cooldown:{closed_at}",
                f"back {self._settings.cooldown_s - left:.0f} s after its last incident closed: "
                f"no new incident for {left:.0f} s more (cooldown {self._settings.cooldown_s:g} s)",
            )
            return True
        if (spent := global_refusal(self._context.ledger, Limits.of(self._context))) is not None:
            self._say_once(snapshot, "budget", f"not acted on: {spent.why}")
            return True
        return False

    def _consider(
        self, graph: IncidentGraph, pool: ThreadPoolExecutor, snapshot: Snapshot, unhealthy: dict[str, Snapshot]
    ) -> None:
        assert snapshot.symptom is not None
        key = fingerprint(snapshot.resource, snapshot.symptom)
        with self._lock:
            if key in self._in_flight or snapshot.resource in self._alerted:  # an alert's run looks at it already
                return
        if self._context.ledger.open_incident_for(key) is not None:
            return  # an incident is on it already: nothing suppressed
        if self._suppressed(snapshot, key, unhealthy):
            return
        self._said.pop(snapshot.resource, None)
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
            self._running[snapshot.resource] = incident_id

        def run() -> RunResult:
            try:
                return start_incident(
                    graph, self._context, snapshot.resource, incident_id, snapshot.taken_at,
                    self._progress(incident_id),
                )  # fmt: skip
            finally:
                with self._lock:
                    self._running.pop(snapshot.resource, None)

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
