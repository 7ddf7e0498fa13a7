"""Nginx runbooks: connection pressure, a full nginx, a broken config on disk, 5xx answers, an unreachable server.

Pressure (stub_status still answers) raises worker_connections, or drops idle keep-alive
connections once at the ceiling. A full nginx (every slot taken: it accepts and closes at
once) is up, so it is never restarted: a graceful reload frees every slot at once (new
workers start empty; the old ones let their held connections go, cut off after
worker_shutdown_timeout), and when nginx is full again in the workers that reload started the
load is real and worker_connections is raised within the policy ceiling; with neither left, a
human decides. A config on disk that fails `nginx -t` escalates with nginx's own words:
OpsGraph does not edit what someone else broke. An unreachable nginx is restarted through
its environment — unless it is an external one that declares no way to (re)start it.

The 5xx the probe grades are the ones nginx made itself (it relays the app's own 5xx
without counting them). They are diagnosed from the upstream side first: the upstream's
health endpoint asked directly, and the error log's "while connecting to upstream" /
"upstream timed out" lines. When the upstream is the cause the plan is empty and the
incident escalates, since no change to nginx fixes a dead or hung app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.environments.external import restart_refusal
from opsgraph.tools.inventory import Resource
from opsgraph.tools.snapshot import Snapshot

# After a scale-up, active connections should fill at most this share of capacity: well
# under the default degraded band (80 %), with room for the growth that caused the incident.
TARGET_CONNECTION_SHARE = 0.5
# Idle keep-alive connections (stub_status "Waiting") this share of the active ones or more
# make dropping them worth a try once worker_connections is at its ceiling.
IDLE_SHARE = 0.5
# A full nginx whose workers are the ones nginx_clear_connections started this recently was
# freed once already and filled up again: the load is real, so raise the limit.
RELOADED_WITHIN_S = 120.0


def _nginx_facts(read: ReadTool, resource: str) -> dict[str, Any]:
    outcome = read("nginx_info", {"resource": resource, "log_lines": 20})
    if not outcome.ok:
        return {"error": outcome.error}
    return outcome.output or {}


# ---- connection pressure


@dataclass(frozen=True)
class _Load:
    active: int
    waiting: int
    worker_connections: int
    worker_processes: int

    @property
    def capacity(self) -> int:
        return self.worker_connections * self.worker_processes

    @property
    def idle_share(self) -> float:
        return self.waiting / self.active if self.active else 0.0


def _load(facts: dict[str, Any]) -> _Load | str:
    """The numbers a capacity decision needs, or why they are missing."""
    if "error" in facts:
        return f"nginx_info failed: {facts['error']}"
    if not facts.get("reachable"):
        return f"nginx did not answer: {facts.get('status_error')}"
    if facts.get("capacity") is None:
        return f"capacity unknown: {facts.get('note')}"
    status = facts["status"]
    return _Load(status["active"], status["waiting"], facts["worker_connections"], facts["worker_processes"])


def _diagnose_connection_pressure(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _nginx_facts(read, incident.resource)
    load = _load(facts)
    if isinstance(load, str):
        return diagnosis_of(
            incident, [*snapshot.reasons, load], "nginx is short of connections; details unreadable", 0.5
        )
    status = facts["status"]
    evidence = [
        f"{load.active} active connections of capacity {load.capacity} (worker_connections "
        f"{load.worker_connections} x {load.worker_processes} workers; {100 * load.active / load.capacity:.1f} %)",
        f"reading {status['reading']}, writing {status['writing']}, waiting (idle keep-alive) {load.waiting}",
        f"{status['dropped']} connections dropped since start; {facts['worker_connections_exhausted']} "
        "'worker_connections are not enough' lines in the recent error log",
    ]
    idle = load.idle_share >= IDLE_SHARE
    clients = Hypothesis(
        cause="clients hold more concurrent connections than worker_connections allows",
        likelihood=0.6 if idle else 0.8,
        evidence_for=[evidence[0]],
    )
    lingering = Hypothesis(
        cause="idle keep-alive connections linger after their clients stopped using them",
        likelihood=0.4 if idle else 0.1,
        evidence_for=[evidence[1]] if idle else [],
        evidence_against=[] if idle else [f"only {load.waiting} of {load.active} connections are idle"],
    )
    return diagnosis_of(
        incident,
        root_cause=(
            f"nginx holds {load.active} of its {load.capacity} connection slots: worker_connections "
            f"{load.worker_connections} is too low for its clients; new connections will be refused"
        ),
        evidence=evidence,
        confidence=0.85,
        hypotheses=[clients, lingering],
    )


def _scaled(load: _Load, ceiling: int) -> int:
    """Double worker_connections until the load fits TARGET_CONNECTION_SHARE, within the ceiling."""
    wanted = load.worker_connections * 2
    while load.active > TARGET_CONNECTION_SHARE * wanted * load.worker_processes and wanted < ceiling:
        wanted *= 2
    return min(wanted, ceiling)


def _capacity_plan(resource: Resource, load: _Load) -> Plan:
    ceiling = resource.policy.max_worker_connections
    wanted = _scaled(load, ceiling)
    if wanted <= load.worker_connections:
        if load.idle_share >= IDLE_SHARE:
            step = PlanStep(
                tool="nginx_clear_connections",
                args={"resource": resource.name},
                rationale=(
                    f"worker_connections is at its ceiling ({ceiling}) and {load.waiting} of "
                    f"{load.active} connections are idle keep-alive ones"
                ),
                expected_effect="idle connections close; clients that still need one reconnect",
            )
            return Plan(steps=[step], summary=f"drop idle connections of {resource.name}", backend=BACKEND)
        return Plan(
            steps=[],
            summary=(
                f"worker_connections is at its ceiling ({ceiling}) and the connections are busy: "
                "a human must add capacity elsewhere or shed load"
            ),
            backend=BACKEND,
        )
    after_pct = 100 * load.active / (wanted * load.worker_processes)
    step = PlanStep(
        tool="nginx_scale_connections",
        args={"resource": resource.name, "worker_connections": wanted},
        rationale=f"{load.active} of {load.capacity} connection slots in use; {wanted} per worker leaves room",
        expected_effect=f"the same connections fill about {after_pct:.0f} % of capacity; new clients get in",
        undo=f"nginx_scale_connections back to {load.worker_connections}",
    )
    return Plan(
        steps=[step],
        summary=f"raise worker_connections of {resource.name} to {wanted}",
        backend=BACKEND,
    )


def _plan_connection_pressure(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    load = _load(_nginx_facts(read, resource.name))
    if isinstance(load, str):
        return Plan(steps=[], summary=f"cannot plan: {load}", backend=BACKEND)
    return _capacity_plan(resource, load)


# ---- 5xx answers


@dataclass(frozen=True)
class _ErrorCause:
    where: str  # "capacity", "upstream" or "nginx"
    detail: str
    evidence: list[str]


def _upstream_trouble(upstream: dict[str, Any] | None) -> str | None:
    if upstream is None:
        return None
    if not upstream["reachable"]:
        return f"{upstream['resource']} does not answer at {upstream['url']} ({upstream['error']})"
    if upstream["status_code"] >= 500:
        return f"{upstream['resource']} answers {upstream['url']} with HTTP {upstream['status_code']}"
    return None


def _error_cause(facts: dict[str, Any]) -> _ErrorCause | str:
    """Where the 5xx answers come from: nginx's own capacity, the upstream, or nginx itself."""
    if "error" in facts:
        return f"nginx_info failed: {facts['error']}"
    recent = facts.get("recent_requests") or {}
    log = facts.get("error_log") or []
    upstream_lines = [line for line in log if "upstream" in line]
    evidence = [
        f"{recent.get('nginx_5xx', '?')} of {recent.get('total', '?')} recent requests got a 5xx made by nginx, "
        f"{recent.get('relayed_5xx', '?')} a 5xx relayed from the upstream; by status: {recent.get('by_status')}",
        *log[-3:],
    ]
    if facts.get("worker_connections_exhausted"):
        return _ErrorCause("capacity", "nginx ran out of worker_connections", evidence)
    trouble = _upstream_trouble(facts.get("upstream"))
    if trouble is not None:
        return _ErrorCause("upstream", trouble, [f"upstream check: {trouble}", *evidence])
    if upstream_lines:
        return _ErrorCause("upstream", f"nginx gets no answer from the upstream: {upstream_lines[-1]}", evidence)
    return _ErrorCause("nginx", "nginx itself answers 5xx without an upstream failure", evidence)


def _diagnose_errors(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _nginx_facts(read, incident.resource)
    cause = _error_cause(facts)
    if isinstance(cause, str):
        return diagnosis_of(incident, [*snapshot.reasons, cause], "nginx answers 5xx; details unreadable", 0.4)
    upstream = (facts.get("upstream") or {}).get("resource") or "the upstream"
    root = {
        "capacity": "nginx answers 5xx because it ran out of worker_connections",
        "upstream": f"the 5xx come from {upstream}: {cause.detail}; nginx only relays them",
        "nginx": f"nginx answers 5xx while {upstream} looks healthy: {cause.detail}",
    }[cause.where]
    return diagnosis_of(incident, [*snapshot.reasons, *cause.evidence], root, 0.8 if cause.where != "nginx" else 0.4)


def _plan_errors(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _nginx_facts(read, resource.name)
    cause = _error_cause(facts)
    if isinstance(cause, str):
        return Plan(steps=[], summary=f"cannot plan: {cause}", backend=BACKEND)
    if cause.where == "capacity":
        load = _load(facts)
        if isinstance(load, str):
            return Plan(steps=[], summary=f"cannot plan: {load}", backend=BACKEND)
        return _capacity_plan(resource, load)
    if cause.where == "upstream":
        return Plan(
            steps=[],
            summary=f"the fault is upstream ({cause.detail}); no change to nginx fixes it: escalate",
            backend=BACKEND,
        )
    return Plan(steps=[], summary=f"no runbook step for {cause.detail}: escalate to a human", backend=BACKEND)


# ---- a full nginx: every connection slot taken


def _recently_reloaded(facts: dict[str, Any]) -> bool:
    """Full in the very workers nginx_clear_connections started less than RELOADED_WITHIN_S ago: it did not hold."""
    cleared = facts.get("last_clear")
    return bool(cleared and cleared["same_workers"] and cleared["age_s"] < RELOADED_WITHIN_S)


def _full_load(facts: dict[str, Any]) -> _Load:
    """A full nginx's numbers: the host's established connections stand for stub_status's active count."""
    return _Load(facts["established_connections"], 0, facts["worker_connections"], facts["worker_processes"])


def _diagnose_exhausted(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _nginx_facts(read, incident.resource)
    if "error" in facts or facts.get("capacity") is None:
        why = facts.get("error") or facts.get("note")
        return diagnosis_of(
            incident, [*snapshot.reasons, f"details unreadable: {why}"], "nginx is full; capacity unknown", 0.5
        )
    load = _full_load(facts)
    reloaded = _recently_reloaded(facts)
    evidence = [
        *snapshot.reasons,
        f"{load.active} established connections to the port of capacity {load.capacity} (worker_connections "
        f"{load.worker_connections} x {load.worker_processes} workers)",
        f"{facts.get('worker_connections_exhausted', 0)} 'worker_connections are not enough' lines in the recent "
        "error log",
        f"workers started {facts.get('youngest_worker_age_s')} s ago, master {facts.get('master_age_s')} s ago; "
        f"last clearing reload: {facts.get('last_clear')}",
    ]
    held = Hypothesis(
        cause="clients hold connections open without finishing their requests (stalled, slow or idle clients)",
        likelihood=0.3 if reloaded else 0.7,
        evidence_for=[] if reloaded else [evidence[-1]],
        evidence_against=[evidence[-1]] if reloaded else [],
    )
    real = Hypothesis(
        cause="more concurrent clients than worker_connections allows",
        likelihood=0.7 if reloaded else 0.3,
        evidence_for=["full again in the workers a clearing reload just started"] if reloaded else [],
    )
    return diagnosis_of(
        incident,
        root_cause=(
            f"every worker connection slot of nginx is taken ({load.active} established connections, capacity "
            f"{load.capacity}): it accepts new connections and closes them at once; nginx is up, not down"
        ),
        evidence=evidence,
        confidence=0.85,
        hypotheses=[held, real],
    )


def _plan_exhausted(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    """Free the slots with a graceful reload; raise the limit when a reload already failed to hold; else escalate."""
    facts = _nginx_facts(read, resource.name)
    if "error" in facts or facts.get("capacity") is None:
        return Plan(steps=[], summary=f"cannot plan: {facts.get('error') or facts.get('note')}", backend=BACKEND)
    tested = facts.get("config_test") or {}
    if not tested.get("ok", False):
        return Plan(
            steps=[],
            summary=f"nginx is full, but its config on disk fails nginx -t, so no reload can free it: "
            f"{tested.get('output')}; a human must fix the config",
            backend=BACKEND,
        )
    if facts.get("master_pid") is None:
        return Plan(
            steps=[],
            summary="nginx is full, but its master process is not known (external.paths.pid_file): "
            "no reload can be sent; escalate",
            backend=BACKEND,
        )
    load = _full_load(facts)
    if not _recently_reloaded(facts):
        step = PlanStep(
            tool="nginx_clear_connections",
            args={"resource": resource.name},
            rationale=(
                f"all {load.capacity} connection slots are taken; a graceful reload gives new workers every slot "
                "at once and lets the held connections go, without a restart"
            ),
            expected_effect="/nginx_status answers again; the clients holding connections are disconnected",
        )
        return Plan(steps=[step], summary=f"free the connection slots of {resource.name}", backend=BACKEND)
    ceiling = resource.policy.max_worker_connections
    wanted = _scaled(load, ceiling)
    if wanted <= load.worker_connections:
        return Plan(
            steps=[],
            summary=(
                f"nginx filled up again right after a reload and worker_connections is at its ceiling ({ceiling}): "
                "a human must add capacity elsewhere or shed load"
            ),
            backend=BACKEND,
        )
    step = PlanStep(
        tool="nginx_scale_connections",
        args={"resource": resource.name, "worker_connections": wanted},
        rationale=f"nginx filled all {load.capacity} slots again after a reload: the load is real",
        expected_effect=f"{wanted * load.worker_processes} slots; new clients get in",
        undo=f"nginx_scale_connections back to {load.worker_connections}",
    )
    return Plan(steps=[step], summary=f"raise worker_connections of {resource.name} to {wanted}", backend=BACKEND)


# ---- a config on disk that fails nginx -t


def _diagnose_config_invalid(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _nginx_facts(read, incident.resource)
    output = (facts.get("config_test") or {}).get("output") or "; ".join(snapshot.reasons)
    return diagnosis_of(
        incident,
        [*snapshot.reasons, *(facts.get("error_log") or [])[-3:]],
        f"the config on disk fails nginx -t ({output}); nginx still serves its previous config, but the next "
        "reload or restart will fail",
        0.9,
    )


def _plan_config_invalid(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    facts = _nginx_facts(read, resource.name)
    output = (facts.get("config_test") or {}).get("output") or facts.get("error") or "see the probe's reason"
    return Plan(
        steps=[],
        summary=(
            f"the config file on disk fails nginx -t: {output}. OpsGraph makes no automatic change to it; a human "
            "must fix the file before anyone reloads (escalate)"
        ),
        backend=BACKEND,
    )


# ---- unreachable


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _nginx_facts(read, incident.resource)
    evidence = [*snapshot.reasons, *(facts.get("error_log") or [])[-3:]]
    if "error" in facts:
        evidence.append(f"nginx_info failed: {facts['error']}")
    return diagnosis_of(incident, evidence, f"{incident.resource} does not answer: nginx is down or hung", 0.7)


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    if (refusal := restart_refusal(resource, running=False)) is not None:
        return Plan(steps=[], summary=f"{refusal}; escalate", backend=BACKEND)
    step = PlanStep(
        tool="nginx_restart",
        args={"resource": resource.name},
        rationale="nginx does not answer; a restart brings it back with its config (open connections drop)",
        expected_effect="/nginx_status answers again",
    )
    return Plan(steps=[step], summary=f"restart {resource.name}", backend=BACKEND)


RUNBOOKS = {
    "nginx_connection_pressure": Runbook(diagnose=_diagnose_connection_pressure, plan=_plan_connection_pressure),
    "nginx_connections_exhausted": Runbook(diagnose=_diagnose_exhausted, plan=_plan_exhausted),
    "nginx_config_invalid": Runbook(diagnose=_diagnose_config_invalid, plan=_plan_config_invalid),
    "nginx_errors": Runbook(diagnose=_diagnose_errors, plan=_plan_errors),
    "nginx_unreachable": Runbook(diagnose=_diagnose_unreachable, plan=_plan_restart),
}
