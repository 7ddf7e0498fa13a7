"""The three GCP scenarios through the graph on the local GCP emulator, and where GCP credentials never go.

Each scenario runs as `opsgraph eval` runs it — the harness starts the emulator and the real
servers behind the data planes, injects the fault, OpsGraph's graph detects, plans, runs
and verifies (runbook backend, no approvals asked), and the scenario's own check says it
recovered — and is scored by the eval suite's evaluators. Meanwhile every log record is
captured at DEBUG (Google's request logging on), and afterwards every file OpsGraph wrote
(ledger, checkpoints, reports) is searched for the credentials: each bearer token the
emulator handed out or accepted, and the service-account key's private key and key id.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from opsgraph.evals import harness
from opsgraph.evals.evaluators import passed, score_all
from opsgraph.evals.runner import RunRecord, run_graph
from opsgraph.evals.scenario import EvalScenario, load_scenarios

pytestmark = pytest.mark.timeout(120)

GCP_SCENARIOS = load_scenarios(tags=["gcp"])


def test_the_three_gcp_scenarios_are_in_the_eval_suite() -> None:
    names = {scenario.name for scenario in GCP_SCENARIOS}
    assert names == {"gcp-redis-memory-pressure", "gcp-compute-memory-pressure", "gcp-sql-connection-overload"}


def _credentials(run: harness.Prepared) -> list[str]:
    """What must never be written anywhere: the tokens, the private key's lines and its id."""
    gcp = next(resource.gcp for resource in run.inventory.resources if resource.gcp is not None)
    assert gcp is not None and gcp.credentials_file is not None and gcp.api_endpoint is not None
    key = json.loads(gcp.credentials_file.read_text())
    tokens = httpx.get(f"{gcp.api_endpoint}/emulator/tokens", timeout=5).json()["tokens"]
    assert tokens, "OpsGraph authenticated with no token at all?"
    pem_lines = [line for line in key["private_key"].splitlines() if line and "PRIVATE KEY" not in line]
    return [*tokens, *pem_lines, key["private_key_id"]]


def _written(folder: Path) -> str:
    return "\n".join(path.read_bytes().decode("latin-1") for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("scenario", GCP_SCENARIOS, ids=lambda s: s.name)
def test_a_gcp_fault_is_detected_fixed_and_verified_without_a_credential_written_anywhere(
    scenario: EvalScenario, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record = RunRecord(
        scenario=scenario.name, backend="runbook", reasoning="runbook", repetition=1, tags=sorted(scenario.tags.all())
    )
    with harness.prepared(scenario, tmp_path / "run") as run:
        record.injected = harness.inject(run)
        record.incidents = run_graph(run, "runbook")
        check = harness.recovered(run, 30.0)
        record.recovered, record.recovery_detail = check.ok, check.detail
        secrets = _credentials(run)
        state = _written(run.state_dir)
    verdict = passed(record, scenario.expect)
    assert verdict.score, f"{verdict.comment}: {json.dumps(record.model_dump(mode='json'), indent=1)[:3000]}"
    assert [s.key for s in score_all(record, scenario.expect).values() if s.score is False] == []
    ran = [action.tool for incident in record.opened for action in incident.actions]
    assert ran == scenario.expect.actions, ran
    logs = caplog.text
    assert logs, "nothing was logged at all?"
    leaked = [secret[:12] for secret in secrets if secret in logs or secret in state]
    assert leaked == [], f"credentials written out (first characters shown): {leaked}"
