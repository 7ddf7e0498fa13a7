"""One scenario run, end to end: fresh servers, the fault, OpsGraph's incident graph unattended, the independent check.

The graph runs as `opsgraph fix --approval none` runs it (`fix_all` with
`Context(approval="none")`): nobody is asked, and the policy still refuses what it always
refuses and holds a destructive step written after untrusted text for a human (nobody
answers here, so it stays waiting: escalated). On top of that, for the eval only, the
scenario's forbidden tools and every tool of a forbidden risk are denied on each resource
(`policy.deny_tools` in a per-run inventory, checked by the guard every tool call passes),
so a forbidden step cannot run on the eval machine. The score does not lean on that net:
every plan the backend proposed is kept with the verdict OpsGraph's own policy gives it
without the eval's deny list, and a forbidden step only the deny list stopped fails the
run (`evaluators.actions_right`).

Every run ends in a `RunRecord`, also when something broke (then `error` says in which
phase): a run that could not be set up is a failed run, torn down like any other.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from opsgraph.agents.llm import reasoner_for
from opsgraph.agents.reasoning import ReadTool, Reasoner
from opsgraph.agents.records import Diagnosis, Incident, Plan
from opsgraph.evals import harness
from opsgraph.evals.scenario import EvalScenario, Expectation
from opsgraph.graph.context import Context
from opsgraph.graph.fixing import fix_all
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.runtime import RunResult
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.inventory import Inventory, Resource, load_inventory
from opsgraph.tools.snapshot import Snapshot

# Action statuses of a step whose tool was called (the others never reached the target).
RAN = frozenset({"ok", "error"})
# How long the recovery check may wait for a first pass: a fix may take a moment to show (a restart,
# a reload); with nothing fixed, nothing will recover by itself, so a short grace instead of the wait.
RECOVERY_DEADLINE_S = 30.0
NOTHING_FIXED_GRACE_S = 2.0

Progress = Callable[[str], None]


class Backend(StrEnum):
    """Who reasons: the embedded runbook, or the configured model (OPSGRAPH_MODEL, or a scenario's recording)."""

    RUNBOOK = "runbook"
    MODEL = "model"


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Proposal(_Record):
    """A plan step the backend proposed, with the eval policy's verdict and OpsGraph's own."""

    tool: str
    args: dict[str, Any]
    backend: str  # who wrote the plan: the backend under test, or the runbook it fell back to
    risk: str | None
    verdict: str  # under the eval's policy (OpsGraph's plus the scenario's deny list)
    own_verdict: str  # under OpsGraph's own policy: run means it would have run unattended
    reason: str


class Action(_Record):
    tool: str
    args: dict[str, Any]
    status: str
    risk: str | None
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.status in RAN


class IncidentRun(_Record):
    """One graph run of the scan: an incident opened (or not: healthy, held, a duplicate) and what came of it."""

    incident_id: str
    resource: str | None
    opened: bool  # the detector opened an incident (it went on to diagnosis)
    symptom: str | None = None
    outcome: str | None = None  # resolved, escalated, awaiting_approval, rejected, healthy, held, duplicate, …
    outcome_detail: str | None = None
    mttd_s: float | None = None
    mttr_s: float | None = None
    root_cause: str | None = None
    evidence: list[str] = Field(default_factory=list)
    backend: str | None = None
    actions: list[Action] = Field(default_factory=list)
    proposals: list[Proposal] = Field(default_factory=list)
    reads: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    fallbacks: list[str] = Field(default_factory=list)
    timeline: list[str] = Field(default_factory=list)

    @property
    def taken(self) -> list[Action]:
        return [action for action in self.actions if action.ran]


class Phases(_Record):
    """Wall seconds per phase: the suite's own (setup, inject, check, teardown) and OpsGraph's."""

    setup_s: float = 0.0
    inject_s: float = 0.0
    opsgraph_s: float = 0.0
    check_s: float = 0.0
    teardown_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.setup_s + self.inject_s + self.check_s + self.teardown_s


class RunRecord(_Record):
    """Everything the evaluators score, for one run of one scenario."""

    scenario: str
    backend: str
    reasoning: str  # the Context's reasoning setting the run used
    repetition: int = Field(ge=1)
    tags: list[str]
    injected: list[dict[str, Any]] = Field(default_factory=list)
    incidents: list[IncidentRun] = Field(default_factory=list)
    recovered: bool | None = None  # the scenario's own check, through its settle window
    recovery_detail: str | None = None
    phases: Phases = Field(default_factory=Phases)
    error: str | None = None  # "phase: what broke" when the run itself failed

    @property
    def opened(self) -> list[IncidentRun]:
        return [incident for incident in self.incidents if incident.opened]

    @property
    def taken(self) -> list[Action]:
        return [action for incident in self.incidents for action in incident.taken]


def reasoning_for(backend: Backend, scenario: EvalScenario, recordings: Path | None = None) -> str | None:
    """The Context `reasoning` a run uses; None when the scenario has nothing to run on.

    The runbook backend is `runbook`. The model backend is the environment's model
    (`OPSGRAPH_MODEL`, e.g. `scripted:PATH` or `google_genai:gemini-2.5-flash`), or, given a
    folder of recordings, the scenario's own `scripted:DIR/NAME.json` (None without one):
    the hook through which recorded model runs replay offline.
    """
    if backend is Backend.RUNBOOK:
        return "runbook"
    if recordings is None:
        return "model"
    recording = recordings / f"{scenario.name}.json"
    return f"scripted:{recording}" if recording.is_file() else None


def denied_tools(expect: Expectation) -> list[str]:
    """The tools the eval denies: the scenario's forbidden ones and every tool of a forbidden risk."""
    unknown = sorted(set(expect.forbidden) - set(CATALOGUE))
    if unknown:
        raise harness.HarnessError(f"expect.forbidden names tools not in the catalogue: {unknown}")
    by_risk = [name for name, spec in CATALOGUE.items() if spec.risk.value in expect.forbidden_risks]
    return sorted({*expect.forbidden, *by_risk})


def eval_inventory(run: harness.Prepared) -> Path:
    """The run's inventory with the eval's deny list on every resource, written beside the harness's own."""
    raw = yaml.safe_load(run.inventory_path.read_text())
    denied = denied_tools(run.scenario.expect)
    for entry in raw["resources"]:
        policy = entry.setdefault("policy", {})
        policy["deny_tools"] = sorted({*policy.get("deny_tools", []), *denied})
    path = run.folder / "opsgraph.eval.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_inventory(path)  # refused here, naming the field, rather than halfway through the graph
    return path


class _Observed:
    """The backend, watched: every plan it returns is kept per incident. It decides and changes nothing.

    Each call gets a backend built afresh, as `Context.reasoning_backend` builds one per node
    call (a scripted model starts its replies over; nothing carries from one node to the next).
    """

    def __init__(self, build: Callable[[], Reasoner]) -> None:
        self.build = build
        self.name = build().name  # built once now too: a model that cannot be built fails before the graph
        self.plans: dict[str, list[Plan]] = defaultdict(list)

    def diagnose(self, incident: Incident, snapshot: Snapshot, read: ReadTool, feedback: str | None) -> Diagnosis:
        return self.build().diagnose(incident, snapshot, read, feedback)

    def plan(
        self, incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadTool, feedback: str | None
    ) -> Plan:
        plan = self.build().plan(incident, diagnosis, resource, read, feedback)
        self.plans[incident.incident_id].append(plan)
        return plan


class _PlanListener:
    """The plans that reached the policy, from the planner's updates (a runbook fallback the backend never returned)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.plans: dict[str, list[Plan]] = defaultdict(list)

    def __call__(self, node: str, update: dict[str, Any]) -> None:
        if node == "detector" and "incident" in update:
            self.current = str(update["incident"]["incident_id"])
        elif node == "planner" and "plan" in update and self.current is not None:
            self.plans[self.current].append(Plan.model_validate(update["plan"]))


def _proposals(plans: list[Plan], resource: str, eval_policy: Inventory, own_policy: Inventory) -> list[Proposal]:
    """Each distinct step proposed, reviewed under the eval's policy and under OpsGraph's own (as in the planner)."""
    seen: set[str] = set()
    proposals = []
    for plan in plans:
        untrusted = plan.informed_by_untrusted_text
        for index, step in enumerate(plan.steps):
            if step.digest() in seen:
                continue
            seen.add(step.digest())
            verdict = review_step(index, step, eval_policy, {resource}, ApprovalMode.NONE, untrusted)
            own = review_step(index, step, own_policy, {resource}, ApprovalMode.NONE, untrusted)
            proposals.append(
                Proposal(
                    tool=step.tool,
                    args=step.args,
                    backend=plan.backend,
                    risk=verdict.risk.value if verdict.risk else None,
                    verdict=verdict.verdict.value,
                    own_verdict=own.verdict.value,
                    reason=verdict.reason,
                )
            )
    return proposals


def _risk(tool: str) -> str | None:
    spec = CATALOGUE.get(tool)
    return spec.risk.value if spec is not None else None


def _incident_run(result: RunResult, plans: list[Plan], eval_policy: Inventory, own_policy: Inventory) -> IncidentRun:
    values = result.values
    incident = values.get("incident")
    diagnosis = values.get("diagnosis") or {}
    report = result.report or {}
    log = values.get("reasoning_log", [])
    timeline = values.get("timeline", [])
    resource = values.get("resource")
    return IncidentRun(
        incident_id=result.incident_id,
        resource=resource,
        opened=incident is not None,
        symptom=incident["symptom"] if incident else None,
        outcome="awaiting_approval" if result.pending is not None else values.get("outcome"),
        outcome_detail=values.get("outcome_detail"),
        mttd_s=round(incident["detected_at"] - incident["fault_started_at"], 3) if incident else None,
        mttr_s=report.get("mttr_s"),
        root_cause=diagnosis.get("root_cause"),
        evidence=list(diagnosis.get("evidence", [])),
        backend=diagnosis.get("backend"),
        actions=[
            Action(tool=a["tool"], args=a["args"], status=a["status"], risk=_risk(a["tool"]), error=a.get("error"))
            for a in values.get("actions", [])
        ],
        proposals=_proposals(plans, str(resource), eval_policy, own_policy),
        # The reads the reasoning made: the only timeline entries that carry what they read.
        reads=sum(1 for entry in timeline if "output" in entry),
        input_tokens=sum(int(entry.get("tokens", {}).get("input_tokens", 0)) for entry in log),
        output_tokens=sum(int(entry.get("tokens", {}).get("output_tokens", 0)) for entry in log),
        fallbacks=[entry["fallback"] for entry in log if entry.get("fallback")],
        timeline=[f"{entry['node']}: {entry['event']}" for entry in timeline],
    )


def run_graph(run: harness.Prepared, reasoning: str) -> list[IncidentRun]:
    """OpsGraph on the run's system, as `opsgraph fix --approval none` runs it, on the eval's policy."""
    policy_path = eval_inventory(run)
    eval_policy = load_inventory(policy_path)
    observed = _Observed(lambda: reasoner_for(reasoning, eval_policy))
    listener = _PlanListener()
    context = Context(
        inventory_path=str(policy_path),
        state_dir=str(run.state_dir),
        approval=ApprovalMode.NONE.value,
        reasoning=reasoning,
        diagnostician_reasoning=None,  # the backend under test reasons for both nodes
        planner_reasoning=None,
        reasoner=observed,
    )
    results = fix_all(context, lambda _request: None, listener, run.injected_at)
    return [
        _incident_run(
            result,
            [*observed.plans[result.incident_id], *listener.plans[result.incident_id]],
            eval_policy,
            run.inventory,
        )
        for result in results
    ]


class _Laps:
    """Times the phases of a run, one after the other, and says each on the progress stream."""

    def __init__(self, label: str, progress: Progress) -> None:
        self.label = label
        self.progress = progress
        self.phase = "setup"
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def next(self, phase: str | None) -> None:
        now = time.monotonic()
        self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + now - self.started
        self.progress(f"{self.label}: {self.phase} {now - self.started:.2f} s")
        self.phase, self.started = phase or "done", now


def run_scenario(
    scenario: EvalScenario,
    folder: Path,
    reasoning: str,
    *,
    backend: Backend = Backend.RUNBOOK,
    repetition: int = 1,
    progress: Progress = to_stderr,
) -> RunRecord:
    """One run: servers up in `folder`, fault in, OpsGraph, the independent check, servers down (always)."""
    laps = _Laps(f"{scenario.name} [{backend.value} #{repetition}]", progress)
    record = RunRecord(
        scenario=scenario.name,
        backend=backend.value,
        reasoning=reasoning,
        repetition=repetition,
        tags=sorted(scenario.tags.all()),
    )
    try:
        with harness.prepared(scenario, folder) as run:
            try:
                laps.next("inject")
                record.injected = harness.inject(run)
                laps.next("opsgraph")
                record.incidents = run_graph(run, reasoning)
                laps.next("check")
                fixed = any(incident.outcome == "resolved" for incident in record.opened)
                check = harness.recovered(run, RECOVERY_DEADLINE_S if fixed else NOTHING_FIXED_GRACE_S)
                record.recovered, record.recovery_detail = check.ok, check.detail
            except Exception as error:  # noqa: BLE001 — a run that broke is a failed result, torn down; the suite goes on
                record.error = f"{laps.phase}: {type(error).__name__}: {error}"
            laps.next("teardown")
    except Exception as error:  # noqa: BLE001 — setup or teardown broke: the same
        record.error = record.error or f"{laps.phase}: {type(error).__name__}: {error}"
    laps.next(None)
    if record.error is not None:
        progress(f"{laps.label}: error in {record.error}")
    record.phases = Phases(**{f"{phase}_s": round(seconds, 3) for phase, seconds in laps.seconds.items()})
    return record
