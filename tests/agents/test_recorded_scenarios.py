"""The shipped recordings replay through the real incident graph on the scenario's real Redis, deterministically.

Each recording under `evals/recordings/` is served by the scripted model (`scripted:PATH`,
as `OPSGRAPH_MODEL` or `opsgraph eval --recordings DIR` name it); the scenario's servers, fault, graph, policy engine,
executor and independent recovery check are all real. What is checked is that the answer
came from the MODEL path — the recording's diagnosis and plan, not the runbook's — and,
for the recording of a model gone wrong, that the policy engine stopped it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from support import fast_context

from opsgraph.agents.llm.recording import load_recording
from opsgraph.evals.harness import inject, prepared, recovered
from opsgraph.evals.scenario import load_scenarios
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.connections import redis_client

RECORDINGS = Path(__file__).resolve().parents[2] / "evals" / "recordings"

pytestmark = pytest.mark.timeout(120)


def replay(name: str, folder: Path, check_s: float = 10.0) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """The scenario of recording `name` (under evals/recordings), run once on it: (report, check passed, facts)."""
    recording = RECORDINGS / name
    [scenario] = load_scenarios(names=[recording.stem])
    with prepared(scenario, folder) as run:
        inject(run)
        cache = redis_client(run.inventory.get("cache"))
        keys = cache.dbsize()
        context = fast_context(run.inventory_path, run.state_dir, approval="none", reasoning=f"scripted:{recording}")
        with incident_graph(run.state_dir) as graph:
            result = start_incident(graph, context, "cache", f"inc-replay-{uuid.uuid4().hex[:8]}")
        check = recovered(run, deadline_s=check_s)
        facts = {
            "plan_by": result.values["plan"]["backend"],
            "keys_before": keys,
            "keys_after": cache.dbsize(),
            "maxmemory": int(str(cache.config_get("maxmemory")["maxmemory"])),
            "ran": [row["tool"] for row in context.ledger.actions(result.incident_id) if row["phase"] == "result"],
        }
    assert result.report is not None, result.values.get("outcome_detail")
    return result.report, check.ok, facts


def test_the_shipped_recordings_are_named_and_described_as_what_they_are() -> None:
    """Top level: the emulator set `make eval` replays (SCENARIO.json); a folder per other set, a real model's named."""
    found = sorted(str(path.relative_to(RECORDINGS)) for path in RECORDINGS.rglob("*.json"))
    assert "redis-memory-pressure.json" in found and "gemma-3-270m/redis-memory-pressure.json" in found
    for name in found:
        recording = load_recording(RECORDINGS / name)
        assert recording.replies, name
        folder = Path(name).parent.name or "emulator"
        assert recording.model == folder, f"{name}: recorded by {recording.model}, filed under {folder}"
        if recording.source == "emulator":
            assert "EMULATOR recording (scripted replay, no model)" in recording.about, name
        else:  # a real model's run: which model and server, said in the file; never a model it was not
            assert "A REAL model's run" in recording.about, name
        assert "gemini" not in recording.model.lower()


def test_the_emulator_recording_fixes_memory_pressure_with_its_own_diagnosis_and_plan(tmp_path: Path) -> None:
    name = "redis-memory-pressure.json"
    report, resolved, facts = replay(name, tmp_path)
    backend = "scripted:emulator"  # a replay, and of whom
    recorded = load_recording(RECORDINGS / name).replies
    assert report["reasoning_backend"] == facts["plan_by"] == backend and report["fallbacks"] == []
    assert report["root_cause"] == recorded[1].tool_calls[0].args["root_cause"]  # the recording's, not the runbook's
    assert [(a["tool"], a["args"], a["status"]) for a in report["actions"]] == [
        ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 80}, "ok")  # the recording's plan ran
    ]
    assert facts["maxmemory"] == 80 * 2**20 and facts["ran"] == ["redis_scale_memory"]
    assert resolved and report["resolved"] is True, report["outcome_detail"]
    assert facts["keys_after"] >= facts["keys_before"]  # no data dropped to make room
    # The emulator reports no usage: OpsGraph's estimate is counted, per node.
    assert set(report["tokens"]["by_node"]) == {"diagnostician", "planner"}
    assert report["diagnosis"]["tokens"]["estimated_calls"] == report["diagnosis"]["tokens"]["model_calls"] == 2


def test_a_recorded_model_gone_wrong_is_stopped_by_the_policy_engine(tmp_path: Path) -> None:
    report, resolved, facts = replay("emulator-unsafe/redis-memory-pressure.json", tmp_path)
    assert report["reasoning_backend"] == "scripted:emulator-unsafe"  # its diagnosis
    [fallback] = report["fallbacks"]
    assert "the policy refused the model's plan twice" in fallback and "redis_flush is destructive" in fallback
    # The runbook's fix: a scale-up, after a purge when the allocator happens to be fragmented.
    assert "redis_scale_memory" in facts["ran"] and set(facts["ran"]) <= {"redis_memory_purge", "redis_scale_memory"}
    assert facts["keys_after"] >= facts["keys_before"]
    assert resolved and report["resolved"] is True, report["outcome_detail"]


def test_the_real_models_recording_replays_to_its_own_answers_and_server_counted_tokens(tmp_path: Path) -> None:
    """Gemma 3 270M's recorded run (poor answers, as a 270M model gives): what it said replays, to the token.

    Live, its diagnosis was its own and its two plans named tools that do not exist; the policy
    engine refused both and the runbook's plan fixed the incident. The replay must do the same.
    """
    name = "gemma-3-270m/redis-memory-pressure.json"
    recording = load_recording(RECORDINGS / name)
    first, resolved, facts = replay(name, tmp_path)
    assert resolved and first["resolved"] is True, first["outcome_detail"]
    # The model's own diagnosis stands, word for word; its own plans reached the policy engine (refused).
    answers = [r.tool_calls[0] for r in recording.replies if r.tool_calls]
    [said] = [call.args for call in answers if call.name == "FinalDiagnosis"]
    assert first["reasoning_backend"] == "scripted:gemma-3-270m" and first["root_cause"] == said["root_cause"]
    [refused] = first["fallbacks"]
    assert facts["plan_by"] == "runbook"  # the plan that ran
    assert refused.startswith("the policy refused the model's plan twice") and "not in the catalogue" in refused
    counted = [r.usage for r in recording.replies if r.error is None]
    assert all(usage is not None for usage in counted)  # every reply carries the server's own count
    assert first["tokens"]["input_tokens"] == sum(u.input_tokens for u in counted if u)
    assert first["tokens"]["output_tokens"] == sum(u.output_tokens for u in counted if u)
    assert not {"redis_flush", "redis_restart"} & set(facts["ran"]) and facts["keys_after"] >= facts["keys_before"]
