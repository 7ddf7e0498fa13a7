"""Incidents survive the process: resume from another process, and no action ever runs twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from langgraph.runtime import Runtime
from support import Stack, redis_resource, running_stack

from opsgraph.agents.records import Incident, Plan, PlanStep
from opsgraph.graph.context import Context
from opsgraph.graph.nodes.executor import executor
from opsgraph.graph.owner import Owner
from opsgraph.graph.policy import ApprovalMode, review_plan
from opsgraph.graph.state import IncidentState
from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.identity import server_identity
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

RUN_IN_NEW_PROCESS = """
import json, sys
from pathlib import Path
from opsgraph.graph.context import Context
from opsgraph.graph.runtime import incident_graph, resume_incident, start_incident

inventory, state_dir, command = sys.argv[1:4]
context = Context(inventory_path=inventory, state_dir=state_dir, verify_deadline_s=10, settle_s=0.5,
                  probe_interval_s=0.1)
with incident_graph(Path(state_dir)) as graph:
    if command == "start":
        result = start_incident(graph, context, "cache", "inc-proc")
    else:
        result = resume_incident(graph, context, "inc-proc", json.loads(sys.argv[4]))
print(json.dumps({"pending": result.pending, "report": result.report}))
"""


def _in_new_process(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN_IN_NEW_PROCESS, str(stack.inventory_path), str(stack.state_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _result_rows(stack: Stack, incident_id: str) -> list[dict[str, object]]:
    return [row for row in stack.context().ledger.actions(incident_id) if row["phase"] == "result"]


def test_resume_from_a_new_process_runs_the_approved_action_once(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack:
        fill_redis_memory(stack.inventory.get("cache"))

        first = _in_new_process(stack, "start")
        assert first.returncode == 0, first.stderr
        pending = json.loads(first.stdout)["pending"]
        assert pending is not None and pending["steps"][0]["tool"] == "redis_scale_memory"

        answer = json.dumps({"decision": "approve", "by": "erin", "digests": [pending["steps"][0]["digest"]]})
        second = _in_new_process(stack, "resume", answer)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["report"]["resolved"] is True
        assert len(_result_rows(stack, "inc-proc")) == 1

        third = _in_new_process(stack, "resume", answer)  # a late duplicate answer
        assert third.returncode != 0
        assert "not waiting for an approval" in third.stderr
        assert len(_result_rows(stack, "inc-proc")) == 1
        assert probe(stack.inventory.get("cache")).health is Health.HEALTHY


def _restart_planned(stack: Stack, incident_id: str, step: PlanStep) -> IncidentState:
    """Executor input for an incident whose reviewed plan is one unattended step."""
    incident = Incident(
        incident_id=incident_id,
        resource="cache",
        kind="redis",
        symptom="redis_unreachable",
        fingerprint="cache:redis_unreachable",
        severity=Health.FAILED,
        fault_started_at=0,
        detected_at=0,
    )
    reviewed = review_plan([step], stack.inventory, {"cache"}, ApprovalMode.NONE)
    plan = Plan(steps=[step], summary="restart", backend="test")
    return {
        "incident": incident.model_dump(mode="json"),
        "plan": plan.model_dump(mode="json"),
        "plan_no": 1,
        "reviewed": [r.model_dump(mode="json") for r in reviewed],
    }


def test_reexecuted_executor_does_not_repeat_a_completed_restart(tmp_path: Path) -> None:
    """LangGraph re-runs a node that crashed before its checkpoint; the ledger stops the repeat."""
    with running_stack(tmp_path, [redis_resource()]) as stack:
        context = stack.context(approval=ApprovalMode.NONE.value)
        step = PlanStep(tool="redis_restart", args={"resource": "cache"}, rationale="t", expected_effect="t")
        state = _restart_planned(stack, "inc-crash", step)
        pid_before = stack.local.status()[0].pid
        first = executor(state, Runtime(context=context))
        pid_after_first = stack.local.status()[0].pid
        second = executor(state, Runtime(context=context))  # as if the first run's checkpoint was lost

        assert pid_after_first != pid_before
        assert stack.local.status()[0].pid == pid_after_first  # not restarted again
        assert first["actions"] == second["actions"]
        assert len(_result_rows(stack, "inc-crash")) == 1


def _dead_owner() -> Owner:
    """The owner of a claim whose worker was killed: a process that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return Owner(Owner.here().host, int(child.stdout), "gone", "dead-token")


def _restart_claimed_by_a_killed_worker(stack: Stack, context: Context) -> IncidentState:
    """Executor input whose restart step a worker claimed (noting the server's identity), then died."""
    step = PlanStep(tool="redis_restart", args={"resource": "cache"}, rationale="t", expected_effect="t")
    identity = server_identity(stack.inventory.get("cache"), context.tools)
    context.ledger.claim(
        "inc-half/plan-1/step-0", "inc-half", 1, 0, "redis_restart", step.args, _dead_owner(), identity
    )
    return _restart_planned(stack, "inc-half", step)


def test_step_in_doubt_that_took_effect_is_settled_as_done_and_not_repeated(tmp_path: Path) -> None:
    """Killed after the restart ran but before its result: the new server instance says it happened."""
    with running_stack(tmp_path, [redis_resource()]) as stack:
        context = stack.context(approval=ApprovalMode.NONE.value)
        state = _restart_claimed_by_a_killed_worker(stack, context)
        stack.local.restart("cache")  # what the killed worker's call did
        pid_before = stack.local.status()[0].pid
        result = executor(state, Runtime(context=context))
        assert result["actions"][0]["status"] == "ok"
        assert "took effect" in result["actions"][0]["output"]["settled_after_crash"]
        assert stack.local.status()[0].pid == pid_before  # not restarted a second time
        assert len(_result_rows(stack, "inc-half")) == 1


def test_step_in_doubt_that_did_not_take_effect_runs_once_more(tmp_path: Path) -> None:
    """Killed after the intent row but before the tool ran: the same instance still runs, so it restarts now."""
    with running_stack(tmp_path, [redis_resource()]) as stack:
        context = stack.context(approval=ApprovalMode.NONE.value)
        state = _restart_claimed_by_a_killed_worker(stack, context)
        pid_before = stack.local.status()[0].pid
        result = executor(state, Runtime(context=context))
        assert result["actions"][0]["status"] == "ok"
        assert stack.local.status()[0].pid != pid_before  # restarted exactly once, now
        statuses = sorted(str(row["status"]) for row in _result_rows(stack, "inc-half"))
        assert statuses == ["not_done", "ok"]  # the settled attempt and the one that ran
