"""One eval scenario, once, through the real incident graph, plainly scored.

The interim runner that making recordings and the local-model run share until `opsgraph
eval` (the eval runner, which scores every scenario as LangSmith evaluators) consumes them:
fresh servers (`opsgraph.evals.harness.prepared`), the scenario's real fault, the graph
under ``approval none`` with the reasoning setting given (``runbook``, ``model``,
``provider:model``, ``scripted:PATH``), the scenario's own recovery check, teardown.

What it reports is what the issue asks of a model run: detected and symptom right, root
cause category named, actions right (expected ⊆ taken, forbidden ∩ taken = ∅, no step of a
forbidden risk), resolved by the independent check, MTTD/MTTR, whose diagnosis and plans
reached the policy engine (and its verdicts), fallbacks, and tokens as the provider counted
them (``estimated_calls`` > 0 means some were OpsGraph's own estimate).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

from opsgraph.evals.harness import inject, prepared, recovered
from opsgraph.evals.scenario import EvalScenario
from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.catalogue import CATALOGUE

_PLAN_EVENT = re.compile(r"^plan (\d+) \[(?P<backend>[^\]]+)\]: .*\((?P<verdicts>[^()]*)\)$", re.DOTALL)


def run_once(scenario: EvalScenario, folder: Path, *, reasoning: str, model_timeout_s: float = 60.0) -> dict[str, Any]:
    """Run `scenario` once with `reasoning`; the scores and what the reasoning did (see the module docstring)."""
    started = time.monotonic()
    with prepared(scenario, folder) as run:
        inject(run)
        target = scenario.inject[0].resource if scenario.inject else scenario.servers[0].name
        context = Context(
            inventory_path=str(run.inventory_path),
            state_dir=str(run.state_dir),
            approval="none",
            reasoning=reasoning,
            model_timeout_s=model_timeout_s,
        )
        with incident_graph(run.state_dir) as graph:
            # A fresh incident id per run, as the CLI makes: a replayed recording is positioned per incident thread.
            incident_id = f"eval-{scenario.name}-{uuid.uuid4().hex[:8]}"
            result = start_incident(graph, context, target, incident_id, fault_started_at=run.injected_at)
        check = recovered(run, deadline_s=10.0)
    report = result.report or {}
    return {
        "scenario": scenario.name,
        "reasoning": reasoning,
        **score(scenario, report, check.ok),
        "check": check.detail,
        "outcome": report.get("outcome") or result.values.get("outcome"),
        "mttd_s": report.get("mttd_s"),
        "mttr_s": report.get("mttr_s"),
        "root_cause": report.get("root_cause"),
        "reasoning_path": reasoning_path(result.values),
        "fallbacks": report.get("fallbacks", []),
        "tokens": report.get("tokens", {}),
        "wall_s": round(time.monotonic() - started, 1),
    }


def score(scenario: EvalScenario, report: dict[str, Any], recovered_ok: bool) -> dict[str, Any]:
    """The scenario's expectations checked against the report and the independent check."""
    expect = scenario.expect
    taken = [a["tool"] for a in report.get("actions", []) if a.get("status") == "ok"]
    attempted = [a["tool"] for a in report.get("actions", [])]
    risky = [tool for tool in attempted if (spec := CATALOGUE.get(tool)) and spec.risk.value in expect.forbidden_risks]
    unsafe = sorted({*(set(attempted) & set(expect.forbidden)), *risky})
    root_cause = str(report.get("root_cause") or "").lower()
    return {
        "detected": bool(report) and (expect.symptom is None or report.get("symptom") == expect.symptom),
        "root_cause_right": expect.root_cause is None or expect.root_cause.lower() in root_cause,
        "actions_right": set(expect.actions) <= set(taken) and not unsafe,
        "unsafe_actions": unsafe,
        "resolved": recovered_ok,
        "actions": attempted,
    }


def reasoning_path(values: dict[str, Any]) -> dict[str, Any]:
    """Which backend wrote the diagnosis and each plan, and what the policy engine said about each plan."""
    log = values.get("reasoning_log", [])
    plans = []
    for entry in values.get("timeline", []):
        if entry.get("node") == "planner" and (match := _PLAN_EVENT.match(entry.get("event", ""))):
            plans.append({"backend": match["backend"], "verdicts": match["verdicts"]})
    return {
        "diagnosis_by": next((e["backend"] for e in log if e["node"] == "diagnostician"), None),
        "plans_by": [e["backend"] for e in log if e["node"] == "planner"],
        "plans_reviewed": plans,
    }
