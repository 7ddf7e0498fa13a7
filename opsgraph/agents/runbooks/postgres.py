"""PostgreSQL runbooks: connection pressure and exhaustion, blocked queries, a bad config, an unreachable server.

Both load symptoms are read through `postgres_info`, and both plans fix everything
that info shows wrong, in the order the symptom asks for: the verifier wants the
whole resource healthy, and the seed fault (a connection leak plus a session idle in
transaction holding a lock) trips both findings at once.

- Connection pressure, and exhaustion (only the superusers' reserved slots left), is
  first a question of *who* holds the slots. Sessions of one application (or, without
  an application_name, of one role) piling up idle are a leak; queries running for a
  long time, or transactions left open, hold their slots too. Those of ordinary roles
  are terminated, with filters that hit only them (state, age, role, application
  name) — never superuser, replication or OpsGraph sessions. Only when that cannot
  relieve the pressure — real demand, or holders OpsGraph may not touch — raise
  max_connections, which costs a restart; where OpsGraph may not restart the server,
  escalate with that said.
- Blocked queries: terminate the sessions at the head of the lock chains (usually
  idle in transaction), never the waiters.
- A configuration file the server would reject is reported, never edited: a human
  fixes it before anyone reloads.
- An unreachable server is restarted through its environment, or, when the inventory
  gives OpsGraph no way to, escalated with what to configure.

A Cloud SQL for PostgreSQL instance (`gcp_sql`) under connection overload is the same
PostgreSQL seen through other tools (`gcp_sql_info`, `gcp_sql_kill_long_queries`, which
reach its database over the same connection): the same reasoning, with one difference —
raising max_connections there is a database-flag change that restarts the instance, left
to a human.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks.common import BACKEND, Runbook, diagnosis_of
from opsgraph.tools.environments.external import restart_refusal
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools import MAX_SESSIONS_PER_CALL, OWN_PREFIX, PostgresKillArgs
from opsgraph.tools.probes.postgres_probe import NO_SLOT
from opsgraph.tools.snapshot import Snapshot

# Sessions of one application or role in one state holding at least this share of the ordinary slots
# are the pressure (a leak, a pile of long queries), not ordinary use.
LEAK_SHARE = 0.2
# An active query, or a transaction left open, this long holds its slot on its own account.
LONG_QUERY_S = 5.0
# After a scale-up, connections in use should sit near this share of the ordinary slots.
TARGET_SHARE = 0.6
# postgres_info lists at most this many long-running sessions (its upper bound).
LIST_LIMIT = 200


@dataclass(frozen=True)
class _Surface:
    """The tools through which one kind of PostgreSQL is read and relieved."""

    info: str
    kill: str
    scale: str | None  # None: no tool raises max_connections there (a human does)


_SURFACES = {
    ResourceKind.POSTGRES: _Surface("postgres_info", "postgres_kill_long_queries", "postgres_scale_connections"),
    ResourceKind.GCP_SQL: _Surface("gcp_sql_info", "gcp_sql_kill_long_queries", None),
}


def _surface(kind: str) -> _Surface:
    return _SURFACES[ResourceKind(kind)]


def _facts(read: ReadTool, resource: str, kind: str) -> dict[str, Any]:
    tool = _surface(kind).info
    outcome = read(tool, {"resource": resource, "long_query_s": LONG_QUERY_S, "limit": LIST_LIMIT})
    if not outcome.ok:
        return {"error": outcome.error, "tool": tool}
    return outcome.output or {}


def _no_slot(facts: dict[str, Any]) -> bool:
    """postgres_info could not connect because every slot, the reserved ones too, is taken."""
    return any(text in str(facts.get("error", "")) for text in NO_SLOT)


def _reserved(facts: dict[str, Any]) -> int:
    return int(facts.get("superuser_reserved_connections", 0)) + int(facts.get("reserved_connections", 0))


def _usable(facts: dict[str, Any]) -> int:
    """The slots ordinary roles may use: max_connections minus the reserved ones."""
    return max(1, int(facts["max_connections"]) - _reserved(facts))


def _pct(used: int, maximum: int) -> float:
    return round(100.0 * used / maximum, 1)


def _slots_line(facts: dict[str, Any], used: int | None = None) -> str:
    used = facts["connections"] if used is None else used
    usable = _usable(facts)
    return (
        f"{used} of {usable} ordinary connection slots in use ({_pct(used, usable)} %; max_connections "
        f"{facts['max_connections']}, {_reserved(facts)} reserved for superusers)"
    )


def _others(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Session groups by application, OpsGraph's own left out."""
    return [group for group in facts["by_application"] if not group["application_name"].startswith(OWN_PREFIX)]


def _floor(facts: dict[str, Any]) -> float:
    return LEAK_SHARE * _usable(facts)


def _leaks(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Applications (or the sessions without an application_name) whose idle sessions hold a large share."""
    return [group for group in _others(facts) if group["idle"] >= _floor(facts)]


def _root_blockers(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Sessions that block others without waiting themselves: where the lock chains start."""
    return [entry for entry in facts["blockers"] if entry.get("root")]


def _long_groups(facts: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """Long-running sessions that hold a large share, by (role, application, state); and notes on spared ones.

    Lock waiters are victims, not holders (ending the blocker frees them), and the heads
    of lock chains have their own step, so both are left out.
    """
    roots = {entry["pid"] for entry in _root_blockers(facts)}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    spared: dict[str, int] = defaultdict(int)
    for entry in facts.get("long_running", []):
        if entry.get("wait_event_type") == "Lock" or entry["pid"] in roots:
            continue
        if entry.get("protected") or entry.get("superuser"):
            spared[str(entry.get("protected") or "superuser")] += 1
            continue
        groups[(entry["user"] or "", entry["application_name"], entry["state"])].append(entry)
    chosen = [entries for entries in groups.values() if len(entries) >= _floor(facts)]
    notes = [
        f"{count} long-running sessions are protected ({why}): OpsGraph never ends those"
        for why, count in spared.items()
    ]
    return chosen, notes


def _name(application_name: str) -> str:
    return repr(application_name) if application_name else "no application_name"


def _describe_group(group: dict[str, Any]) -> str:
    ages = f" for {group['idle_min_s']:.1f}-{group['idle_max_s']:.1f} s" if group["idle"] else ""
    superuser = f"; {group['superuser_sessions']} are a superuser's" if group["superuser_sessions"] else ""
    who = (
        f"application {group['application_name']!r}"
        if group["application_name"]
        else "sessions without an application_name"
    )
    return (
        f"{who} (user {', '.join(group['users'])}): {group['sessions']} sessions, {group['idle']} idle{ages}{superuser}"
    )


def _describe_long(entries: list[dict[str, Any]]) -> str:
    first = entries[0]
    ages = [entry["state_age_s"] or 0 for entry in entries]
    return (
        f"{len(entries)} sessions of user {first['user']} ({_name(first['application_name'])}) {first['state']} "
        f"for {min(ages):.0f}-{max(ages):.0f} s; e.g. {first['query']!r}"
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

_NO_SLOT_CAUSE = (
    "every connection slot is taken, the superusers' reserved ones too: OpsGraph could not connect "
    "to see who holds them"
)


def _diagnose_connections(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _facts(read, incident.resource, incident.kind)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"{facts['tool']} failed: {facts['error']}"]
        if _no_slot(facts):
            return diagnosis_of(incident, evidence, _NO_SLOT_CAUSE, 0.8)
        return diagnosis_of(
            incident, evidence, "PostgreSQL is short of connection slots; details could not be read", 0.5
        )
    used, usable = facts["connections"], _usable(facts)
    by_state = facts["by_state"]
    exhausted = used >= usable
    evidence = [
        _slots_line(facts) + (": only the reserved slots are left" if exhausted else ""),
        f"client sessions by state: {by_state}",
        *[_describe_group(group) for group in _others(facts)[:3]],
    ]
    if "background_processes" in facts:
        evidence.append(f"{facts['background_processes']} background processes (not counted: they have own slots)")
    if facts["hidden_sessions"]:
        evidence.append(f"{facts['hidden_sessions']} sessions' details are hidden from {facts['connected_as']}")
    if facts["blocked_queries"]:
        evidence.append(f"{facts['blocked_queries']} queries also wait on locks")
    leaks = _leaks(facts)
    long_groups, _ = _long_groups(facts)
    evidence += [_describe_long(entries) for entries in long_groups[:3]]
    idle_leaked = sum(group["idle"] for group in leaks)
    active = int(by_state.get("active", 0))
    busy = active >= used / 2 and not long_groups
    leak = Hypothesis(
        cause="a connection leak: an application opens sessions and leaves them idle",
        likelihood=0.9 if leaks else 0.1,
        evidence_for=[_describe_group(group) for group in leaks],
        evidence_against=[] if leaks else ["no application or role holds a large share of idle sessions"],
    )
    holding = Hypothesis(
        cause="long-running queries or transactions left open hold their slots",
        likelihood=0.85 if long_groups else 0.1,
        evidence_for=[_describe_long(entries) for entries in long_groups],
        evidence_against=[] if long_groups else [f"no large group of sessions runs longer than {LONG_QUERY_S:g} s"],
    )
    demand = Hypothesis(
        cause="real demand: more concurrent work than the ordinary slots allow",
        likelihood=0.7 if busy else 0.15,
        evidence_for=[f"{active} sessions active, none of them for long"] if busy else [],
        evidence_against=[] if busy else [f"{active} of {used} sessions are active"],
    )
    share = f"{_pct(used, usable)} % of the {usable} ordinary slots in use"
    if leaks:
        names = ", ".join(_name(group["application_name"]) for group in leaks)
        root_cause = f"connection leak: {names} holds {idle_leaked} idle sessions ({share})"
    elif long_groups:
        names = ", ".join(
            f"{entries[0]['user']} ({_name(entries[0]['application_name'])}, {entries[0]['state']})"
            for entries in long_groups
        )
        root_cause = f"long-running sessions hold the slots: {names} ({share})"
    else:
        root_cause = f"{used} of {usable} ordinary slots in use, {active} of them active: demand exceeds the slots"
    if exhausted:
        root_cause = f"connections exhausted, only the reserved slots are left; {root_cause}"
    return diagnosis_of(
        incident,
        root_cause=root_cause,
        evidence=evidence,
        confidence=0.9 if leaks or long_groups else 0.6,
        hypotheses=[leak, holding, demand],
    )


def _diagnose_blocked(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _facts(read, incident.resource, incident.kind)
    if "error" in facts:
        evidence = [*snapshot.reasons, f"{facts['tool']} failed: {facts['error']}"]
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


def _config_lines(facts: dict[str, Any], snapshot: Snapshot) -> list[str]:
    """Each rejected line as file:line: name = value: error (from postgres_info, else the probe's reasons)."""
    errors = facts.get("config_errors")
    if not errors:
        return list(snapshot.reasons)
    return [
        f"{error['file']}:{error['line']}: "
        + (f"{error['name']} = {error['setting']!r}: " if error["name"] else "")
        + str(error["error"])
        for error in errors
    ]


def _diagnose_config(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    facts = _facts(read, incident.resource, incident.kind)
    lines = _config_lines(facts, snapshot)
    cause = (
        f"the configuration files on disk hold {len(lines)} line(s) the server would reject: the next reload "
        "ignores them, and a restart may not come up (reported before anyone reloads)"
    )
    return diagnosis_of(incident, lines, cause, confidence=0.9)


def _diagnose_unreachable(incident: Incident, snapshot: Snapshot, read: ReadTool) -> Diagnosis:
    cause = f"{incident.resource} does not answer: the server is down, hung or refusing connections"
    return diagnosis_of(incident, snapshot.reasons, cause, confidence=0.7)


# ---- plans


def _kill_step(resource: Resource, args: dict[str, Any], rationale: str, effect: str) -> PlanStep | str:
    """A kill step (postgres_kill_long_queries or its Cloud SQL twin), or why none can be proposed
    (arguments the tool would refuse)."""
    full = {"resource": resource.name, **args}
    tool = _surface(resource.kind).kill
    try:
        PostgresKillArgs.model_validate(full)
    except ValidationError as error:
        return f"cannot target these sessions with {tool}: {error.errors()[0]['msg']}"
    return PlanStep(tool=tool, args=full, rationale=rationale, expected_effect=effect)


def _leak_steps(resource: Resource, facts: dict[str, Any]) -> tuple[list[PlanStep], list[str], int]:
    """Terminate each leaking group's idle sessions; returns steps, notes and slots freed.

    A named application is targeted by its name; sessions without one by that (empty)
    name and, when a single role holds them, by the role too.
    """
    steps: list[PlanStep] = []
    notes: list[str] = []
    freed = 0
    for group in _leaks(facts):
        name = group["application_name"]
        killable = group["idle"] - group["idle_superuser"]
        if group["idle_superuser"]:
            notes.append(
                f"{group['idle_superuser']} idle sessions of {_name(name)} belong to a superuser: OpsGraph never "
                "terminates those (applications should not connect as superusers)"
            )
        if killable < 1:
            continue
        role = {"user": group["users"][0]} if not name and len(group["users"]) == 1 else {}
        step = _kill_step(
            resource,
            {
                "state": "idle",
                "min_duration_s": math.floor(group["idle_min_s"] or 0),
                **role,
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


def _long_steps(resource: Resource, facts: dict[str, Any]) -> tuple[list[PlanStep], list[str], int]:
    """Terminate each large group of long-running sessions (role + application + state + age)."""
    groups, notes = _long_groups(facts)
    steps: list[PlanStep] = []
    freed = 0
    for entries in groups:
        first = entries[0]
        step = _kill_step(
            resource,
            {
                "state": first["state"],
                "min_duration_s": math.floor(min(entry["state_age_s"] or 0 for entry in entries)),
                "user": first["user"],
                "application_name": first["application_name"],
                "max_sessions": min(len(entries), MAX_SESSIONS_PER_CALL),
            },
            rationale=f"{_describe_long(entries)}: they hold their slots while others are refused",
            effect=f"about {len(entries)} connection slots freed; those statements are cancelled and roll back",
        )
        if isinstance(step, str):
            notes.append(step)
            continue
        steps.append(step)
        freed += len(entries)
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
    tool = _surface(resource.kind).scale
    if tool is None:
        return (
            f"{still_used} connections would still be in use: raising max_connections of {resource.name} is a "
            "database-flag change that restarts the instance, so a human decides"
        )
    maximum = facts["max_connections"]
    reserved = _reserved(facts)
    wanted = max(math.ceil((still_used / TARGET_SHARE + reserved) / 10) * 10, maximum + 10)
    ceiling = resource.policy.max_connections
    if wanted > ceiling:
        return f"would need max_connections {wanted}, above the policy ceiling of {ceiling}: a human decides"
    return PlanStep(
        tool=tool,
        args={"resource": resource.name, "max_connections": wanted},
        rationale=(
            f"{still_used} connections would still be in use of {_usable(facts)} ordinary slots: "
            "terminating sessions cannot relieve it"
        ),
        expected_effect=(
            f"use falls to about {_pct(still_used, wanted - reserved)} % of the ordinary slots (after a restart)"
        ),
        undo=f"postgres_scale_connections back to {maximum}",
    )


def _with_notes(summary: str, notes: list[str]) -> str:
    return summary + (" (" + "; ".join(notes) + ")" if notes else "")


def _plan(resource: Resource, read: ReadTool, locks_first: bool) -> Plan:
    facts = _facts(read, resource.name, resource.kind)
    if "error" in facts:
        if _no_slot(facts):
            summary = (
                f"{_NO_SLOT_CAUSE}, so it cannot end the sessions that hold them; only a restart would free "
                "slots (it drops every session): a human decides. Give OpsGraph a superuser connection "
                "(it then uses a reserved slot) so it can act next time"
            )
            return Plan(steps=[], summary=summary, backend=BACKEND)
        return Plan(steps=[], summary=f"cannot plan: {facts['tool']} failed ({facts['error']})", backend=BACKEND)
    leak_steps, notes, freed = _leak_steps(resource, facts)
    long_steps, long_notes, long_freed = _long_steps(resource, facts)
    blocker_steps, blocker_notes = _blocker_steps(resource, facts) if facts["blocked_queries"] else ([], [])
    notes += long_notes + blocker_notes
    holders = [*leak_steps, *long_steps]
    steps = [*blocker_steps, *holders] if locks_first else [*holders, *blocker_steps]
    band = resource.thresholds.connections_used_pct
    still_used = facts["connections"] - freed - long_freed
    if not locks_first and 100.0 * still_used / _usable(facts) >= band.degraded:
        refusal = restart_refusal(resource) if _surface(resource.kind).scale is not None else None
        if refusal is not None:
            summary = (
                f"ending the sessions OpsGraph may end would still leave {_slots_line(facts, still_used)}; only a "
                f"restart to raise max_connections is left, and OpsGraph may not do it: {refusal}"
            )
            return Plan(steps=[], summary=_with_notes(summary, notes), backend=BACKEND)
        scale = _scale_step(resource, facts, still_used)
        if isinstance(scale, str):
            notes.append(scale)
        else:
            steps.append(scale)
    summary = "; ".join(_step_summary(step) for step in steps) or "no safe step: escalate to a human"
    return Plan(steps=steps, summary=_with_notes(summary, notes), backend=BACKEND)


def _step_summary(step: PlanStep) -> str:
    args = step.args
    if step.tool == "postgres_scale_connections":
        return f"raise max_connections of {args['resource']} to {args['max_connections']} (restart)"
    name = args.get("application_name")
    who = " ".join(
        part
        for part in (f"user {args['user']}" if args.get("user") else "", _name(name) if name is not None else "")
        if part
    )
    what = "blocking" if args.get("blockers_only") else args.get("state", "")
    return f"terminate up to {args['max_sessions']} {what} sessions of {who or '?'}"


def _plan_connections(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _plan(resource, read, locks_first=False)


def _plan_blocked(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    return _plan(resource, read, locks_first=True)


def _plan_config(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    """Never an automatic change: which value was meant is the operator's call."""
    facts = _facts(read, resource.name, resource.kind)
    lines = facts.get("config_errors") or []
    where = ", ".join(f"{error['file']}:{error['line']}" for error in lines) or "the configuration files"
    summary = (
        f"reported before anyone reloads: fix {where} by hand (the next reload would ignore these lines and a "
        "restart may fail); OpsGraph does not edit PostgreSQL's configuration: escalate to a human"
    )
    return Plan(steps=[], summary=summary, backend=BACKEND)


def _plan_restart(incident: Incident, resource: Resource, read: ReadTool) -> Plan:
    if (refusal := restart_refusal(resource, running=False)) is not None:
        return Plan(steps=[], summary=f"{refusal}: escalate to a human", backend=BACKEND)
    step = PlanStep(
        tool="postgres_restart",
        args={"resource": resource.name},
        rationale="the server does not answer; a restart brings it back (open transactions roll back)",
        expected_effect="PostgreSQL accepts connections again",
    )
    return Plan(steps=[step], summary=f"restart {resource.name}", backend=BACKEND)


RUNBOOKS = {
    "postgres_connection_pressure": Runbook(diagnose=_diagnose_connections, plan=_plan_connections),
    "postgres_connections_exhausted": Runbook(diagnose=_diagnose_connections, plan=_plan_connections),
    "postgres_blocked_queries": Runbook(diagnose=_diagnose_blocked, plan=_plan_blocked),
    "postgres_config_invalid": Runbook(diagnose=_diagnose_config, plan=_plan_config),
    "postgres_unreachable": Runbook(diagnose=_diagnose_unreachable, plan=_plan_restart),
    "gcp_sql_connection_overload": Runbook(diagnose=_diagnose_connections, plan=_plan_connections),
}
