"""PostgreSQL runbooks: connection pressure, queries blocked on locks, an unreachable server.

Both load symptoms are read through `postgres_info`, and both plans fix everything
that info shows wrong, in the order the symptom asks for: the verifier wants the
whole resource healthy, and the seed fault (a connection leak plus a session idle in
transaction holding a lock) trips both findings at once.

- Connection pressure is first a question of *who* holds the slots. Idle sessions
  piling up under one application are a leak: terminate them (filtered by state,
  application and age). Only when that cannot relieve the pressure — real demand,
  or holders OpsGraph may not touch (superuser sessions) — raise max_connections,
  which costs a restart.
- Blocked queries: terminate the sessions at the head of the lock chains (usually
  idle in transaction), never the waiters.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.graph.schemas import Diagnosis, Hypothesis, Incident, Plan, PlanStep, Snapshot
from opsgraph.tools.inventory import Resource
from opsgraph.tools.postgres_tools import MAX_SESSIONS_PER_CALL, OWN_PREFIX, PostgresKillArgs

# Idle sessions of one application holding at least this share of max_connections are a leak.
LEAK_SHARE = 0.2
# After a scale-up, connections in use should sit near this share of max_connections.
TARGET_SHARE = 0.6


def _facts(read: ReadTool, resource: str) -> dict[str, Any]:
    outcome = read("postgres_info", {"resource": resource})
    if not outcome.ok:
        return {"error": outcome.error}
    return outcome.output or {}


def _pct(used: int, maximum: int) -> float:
    return round(100.0 * used / maximum, 1)


def _others(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Session groups by application, OpsGraph's own left out."""
    return [group for group in facts["by_application"] if not group["application_name"].startswith(OWN_PREFIX)]


def _leaks(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Applications whose idle sessions hold a large share of the slots."""
    floor = LEAK_SHARE * facts["max_connections"]
    return [group for group in _others(facts) if group["idle"] >= floor]


def _root_blockers(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Sessions that block others without waiting themselves: where the lock chains start."""
    return [entry for entry in facts["blockers"] if entry.get("root")]


def _describe_group(group: dict[str, Any]) -> str:
    ages = f" for {group['idle_min_s']:.1f}-{group['idle_max_s']:.1f} s" if group["idle"] else ""
    superuser = f"; {group['superuser_sessions']} are a superuser's" if group["superuser_sessions"] else ""
    return (
        f"application {group['application_name']!r} (user {', '.join(group['users'])}): {group['sessions']} sessions, "
        f"{group['idle']} idle{ages}{superuser}"
    )


def _describe_blocker(entry: dict[str, Any]) -> str:
    if "state" not in entry:
        return f"pid {entry['pid']} (details hidden from this role) blocks {entry['blocks']} sessions"
    xact = f", transaction open {entry['xact_age_s']:.0f} s" if entry.get("xact_age_s") is not None else ""
    return (
        f"pid {entry['pid']} ({entry['application_name'] or 'no application_name'}, user {entry['user']}) "
        f"{entry['state']} for {entry['state_age_s'] or 0:.0f} s{xact} blocks {entry['blocks']} sessions; "
        f"last query: {entry['query']!r}"
    )


# ---- diagnoses


def _diagnose_connections(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _facts(read, incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"postgres_info failed: {facts['error']}"]
        return diagnosis_of(
            incident, evidence, "PostgreSQL is short of connection slots; details could not be read", 0.5
        )
    used, maximum = facts["connections"], facts["max_connections"]
    by_state = facts["by_state"]
    evidence = [
        f"{used} of max_connections {maximum} in use ({_pct(used, maximum)} %)",
        f"client sessions by state: {by_state}",
        *[_describe_group(group) for group in _others(facts)[:3]],
    ]
    if facts["hidden_sessions"]:
        evidence.append(f"{facts['hidden_sessions']} sessions' details are hidden from {facts['connected_as']}")
    if facts["blocked_queries"]:
        evidence.append(f"{facts['blocked_queries']} queries also wait on locks")
    leaks = _leaks(facts)
    idle_leaked = sum(group["idle"] for group in leaks)
    active = int(by_state.get("active", 0))
    leak = Hypothesis(
        cause="a connection leak: an application opens sessions and leaves them idle",
        likelihood=0.9 if leaks else 0.1,
        evidence_for=[_describe_group(group) for group in leaks],
        evidence_against=[] if leaks else ["no application holds a large share of idle sessions"],
    )
    demand = Hypothesis(
        cause="real demand: more concurrent work than max_connections allows",
        likelihood=0.7 if active >= used / 2 else 0.15,
        evidence_for=[f"{active} sessions active"] if active >= used / 2 else [],
        evidence_against=[] if active >= used / 2 else [f"only {active} of {used} sessions are active"],
    )
    if leaks:
        names = ", ".join(repr(group["application_name"]) for group in leaks)
        root_cause = (
            f"connection leak: {names} holds {idle_leaked} idle sessions of max_connections {maximum} "
            f"({_pct(used, maximum)} % of slots in use)"
        )
    else:
        root_cause = f"{used} of max_connections {maximum} in use, {active} of them active: demand exceeds the slots"
    return diagnosis_of(
        incident,
        root_cause=root_cause,
        evidence=evidence,
        confidence=0.9 if leaks else 0.6,
        hypotheses=[leak, demand],
    )


def _diagnose_blocked(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _facts(read, incident.resource)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"postgres_info failed: {facts['error']}"]
        return diagnosis_of(incident, evidence, "queries wait on locks; details could not be read", 0.5)
    roots = _root_blockers(facts)
    locks = facts["locks"]
    evidence = [
        f"{facts['blocked_queries']} queries wait on locks ({locks['waiting']} lock requests waiting)",
        *[_describe_blocker(entry) for entry in roots[:5]],
    ]
    idle_in_transaction = [entry for entry in roots if str(entry.get("state", "")).startswith("idle in transaction")]
    holding = Hypothesis(
        cause="a session left idle in transaction holds locks others need",
        likelihood=0.9 if idle_in_transaction else 0.1,
        evidence_for=[_describe_blocker(entry) for entry in idle_in_transaction[:3]],
    )
    long_statement = Hypothesis(
        cause="a long-running statement holds locks others need",
        likelihood=0.6 if roots and not idle_in_transaction else 0.1,
        evidence_for=[_describe_blocker(entry) for entry in roots if entry.get("state") == "active"][:3],
    )
    if roots:
        names = sorted({repr(entry.get("application_name") or "?") for entry in roots})
        states = sorted({str(entry.get("state", "hidden")) for entry in roots})
        root_cause = (
            f"{len(roots)} session(s) of {', '.join(names)} ({', '.join(states)}) hold locks; "
            f"{facts['blocked_queries']} queries queue behind them"
        )
    else:
        root_cause = f"{facts['blocked_queries']} queries wait on locks, but no blocking session is visible"
    return diagnosis_of(
        incident,
        root_cause=root_cause,
        evidence=evidence,
        confidence=0.9 if roots else 0.4,
        hypotheses=[holding, long_statement],
    )


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    cause = f"{incident.resource} does not answer: the server is down, hung or refusing connections"
    return diagnosis_of(incident, snapshot.reasons, cause, confidence=0.7)


# ---- plans


def _kill_step(resource: Resource, args: dict[str, Any], rationale: str, effect: str) -> PlanStep | str:
    """A postgres_kill_long_queries step, or why none can be proposed (arguments the tool would refuse)."""
    full = {"resource": resource.name, **args}
    try:
        PostgresKillArgs.model_validate(full)
    except ValidationError as error:
        return f"cannot target these sessions with postgres_kill_long_queries: {error.errors()[0]['msg']}"
    return PlanStep(tool="postgres_kill_long_queries", args=full, rationale=rationale, expected_effect=effect)


def _leak_steps(resource: Resource, facts: dict[str, Any]) -> tuple[list[PlanStep], list[str], int]:
    """Terminate each leaking application's idle sessions; returns steps, notes and slots freed."""
    steps: list[PlanStep] = []
    notes: list[str] = []
    freed = 0
    for group in _leaks(facts):
        name = group["application_name"]
        killable = group["idle"] - group["idle_superuser"]
        if group["idle_superuser"]:
            notes.append(
                f"{group['idle_superuser']} idle sessions of {name!r} belong to a superuser: OpsGraph never "
                "terminates those (applications should not connect as superusers)"
            )
        if killable < 1:
            continue
        if not name:
            # A role filter would also hit that role's other applications: leave it to a human.
            notes.append(f"{killable} idle sessions without an application_name: no filter targets only them")
            continue
        step = _kill_step(
            resource,
            {
                "state": "idle",
                "min_duration_s": math.floor(group["idle_min_s"] or 0),
                "application_name": name,
                "max_sessions": min(killable, MAX_SESSIONS_PER_CALL),
            },
            rationale=f"{_describe_group(group)}: leaked sessions holding slots while doing nothing",
            effect=f"about {killable} connection slots freed; the application's active work is untouched",
        )
        if isinstance(step, str):
            notes.append(step)
            continue
        steps.append(step)
        freed += killable
    return steps, notes, freed


def _blocker_steps(resource: Resource, facts: dict[str, Any]) -> tuple[list[PlanStep], list[str]]:
    """Terminate the heads of the lock chains, one step per (state, application)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    notes: list[str] = []
    for entry in _root_blockers(facts):
        if entry.get("protected") is not None or "state" not in entry:
            reason = entry.get("protected") or "hidden"
            notes.append(f"blocker pid {entry['pid']} is protected ({reason}): a human must end it")
            continue
        groups[(entry["state"], entry["application_name"])].append(entry)
    steps: list[PlanStep] = []
    for (state, name), entries in groups.items():
        blocked = sum(entry["blocks"] for entry in entries)
        target: dict[str, Any] = {"application_name": name} if name else {}
        step = _kill_step(
            resource,
            {
                "state": state,
                "min_duration_s": math.floor(min(entry["state_age_s"] or 0 for entry in entries)),
                **target,
                "blockers_only": True,
                "max_sessions": len(entries),
            },
            rationale=f"{'; '.join(_describe_blocker(entry) for entry in entries[:3])}",
            effect=f"its locks are released (its transaction rolls back); {blocked} waiting queries proceed",
        )
        if isinstance(step, str):
            notes.append(step)
        else:
            steps.append(step)
    return steps, notes


def _scale_step(resource: Resource, facts: dict[str, Any], still_used: int) -> PlanStep | str:
    maximum = facts["max_connections"]
    wanted = max(math.ceil(still_used / TARGET_SHARE / 10) * 10, maximum + 10)
    ceiling = resource.policy.max_connections
    if wanted > ceiling:
        return f"would need max_connections {wanted}, above the policy ceiling of {ceiling}: a human decides"
    return PlanStep(
        tool="postgres_scale_connections",
        args={"resource": resource.name, "max_connections": wanted},
        rationale=(
            f"{still_used} connections would still be in use of max_connections {maximum}: "
            "terminating sessions cannot relieve it"
        ),
        expected_effect=f"use falls to about {_pct(still_used, wanted)} % of max_connections (after a restart)",
        undo=f"postgres_scale_connections back to {maximum}",
    )


def _plan(resource: Resource, read: ReadTool, locks_first: bool) -> Plan:
    facts = _facts(read, resource.name)
    if "error" in facts:
        return Plan(steps=[], summary=f"cannot plan: postgres_info failed ({facts['error']})", backend=BACKEND)
    leak_steps, notes, freed = _leak_steps(resource, facts)
    blocker_steps, blocker_notes = _blocker_steps(resource, facts) if facts["blocked_queries"] else ([], [])
    notes += blocker_notes
    steps = [*blocker_steps, *leak_steps] if locks_first else [*leak_steps, *blocker_steps]
    band = resource.thresholds.connections_used_pct
    still_used = facts["connections"] - freed
    if not locks_first and 100.0 * still_used / facts["max_connections"] >= band.degraded:
        scale = _scale_step(resource, facts, still_used)
        if isinstance(scale, str):
            notes.append(scale)
        else:
            steps.append(scale)
    summary = "; ".join(_step_summary(step) for step in steps) or "no safe step: escalate to a human"
    if notes:
        summary += " (" + "; ".join(notes) + ")"
    return Plan(steps=steps, summary=summary, backend=BACKEND)


def _step_summary(step: PlanStep) -> str:
    args = step.args
    if step.tool == "postgres_scale_connections":
        return f"raise max_connections of {args['resource']} to {args['max_connections']} (restart)"
    who = args.get("application_name") or args.get("user") or "?"
    what = "blocking" if args.get("blockers_only") else args.get("state", "")
    return f"terminate up to {args['max_sessions']} {what} sessions of {who!r}"


def _plan_connections(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _plan(resource, read, locks_first=False)


def _plan_blocked(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _plan(resource, read, locks_first=True)


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    step = PlanStep(
        tool="postgres_restart",
        args={"resource": resource.name},
        rationale="the server does not answer; a restart brings it back (open transactions roll back)",
        expected_effect="PostgreSQL accepts connections again",
    )
    return Plan(steps=[step], summary=f"restart {resource.name}", backend=BACKEND)


RUNBOOKS = {
    "postgres_connection_pressure": Runbook(diagnose=_diagnose_connections, plan=_plan_connections),
    "postgres_blocked_queries": Runbook(diagnose=_diagnose_blocked, plan=_plan_blocked),
    "postgres_unreachable": Runbook(diagnose=_diagnose_unreachable, plan=_plan_restart),
}
