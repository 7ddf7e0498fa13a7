"""GCP credentials never reach a model's prompt, while the GCP evidence does.

A scripted tool-calling model (the emulator of an LLM) diagnoses and plans a Memorystore
incident through the real GCP read tools, which talk to the GCP emulator with a service-account
key: every prompt it was sent is searched for each bearer token the emulator handed out or
accepted, and for the key's private key lines and id.
"""

from __future__ import annotations

import json
from pathlib import Path

from gcp_support import gcp_world
from llm_fixtures import DIAGNOSIS_ANSWER

from opsgraph.agents.evidence import ReadOnlyTools
from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.reasoner import FinalDiagnosis, FinalPlan
from opsgraph.agents.llm.scripted import ScriptedChatModel, answer, tool_calls
from opsgraph.agents.records import Incident
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

PLAN = {
    "summary": "scale the instance to 2 GB",
    "steps": [
        {
            "tool": "gcp_redis_scale_memory",
            "args": {"resource": "cache", "memory_size_gb": 2},
            "rationale": "the dataset fills 1 GB",
            "expected_effect": "no more OOM",
        }
    ],
}


def test_a_model_reading_gcp_tools_sees_the_evidence_and_no_credential(tmp_path: Path) -> None:
    with gcp_world(tmp_path) as world:
        inventory = world.inventory
        incident = Incident(
            incident_id="inc-gcp-cache", resource="cache", kind="gcp_redis", symptom="gcp_redis_memory_pressure",
            fingerprint="cache:gcp_redis_memory_pressure", severity=Health.FAILED, fault_started_at=1.0,
            detected_at=2.0,
        )  # fmt: skip
        model = ScriptedChatModel.of([
            tool_calls(("gcp_redis_info", {"resource": "cache"})),
            answer(FinalDiagnosis, DIAGNOSIS_ANSWER),
            answer(FinalPlan, PLAN),
        ])  # fmt: skip
        reasoner = ModelReasoner(model, inventory=inventory)
        read = ReadOnlyTools(world.context(), timeout_s=30)
        diagnosis = reasoner.diagnose(incident, probe(world.resource("cache")), read, None)
        plan = reasoner.plan(incident, diagnosis, inventory.get("cache"), read, None)
        key = json.loads(world.key_file.read_text())
        secrets = [
            *world.emulator.issued_tokens(),
            *(line for line in key["private_key"].splitlines() if line and "PRIVATE KEY" not in line),
            key["private_key_id"],
        ]
    assert diagnosis.fallback is None and plan.fallback is None
    assert [step.tool for step in plan.steps] == ["gcp_redis_scale_memory"]
    sent = model.prompt_text()
    assert "memory_size_gb" in sent and "STANDARD_HA" in sent and "used_memory" in sent  # the evidence got through
    assert len(secrets) > 3
    assert [secret[:12] for secret in secrets if secret in sent] == []
