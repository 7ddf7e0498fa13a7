"""A model run recorded through the real provider path replays offline to the same answers, tokens and negotiation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_fixtures import (
    DIAGNOSIS_ANSWER,
    PLAN_ANSWER,
    FakeRead,
    cache_inventory,
    cache_resource,
    redis_incident,
    redis_snapshot,
)
from openai_stub import StubReply, openai_stub

from opsgraph.agents.llm import ModelReasoner
from opsgraph.agents.llm.recording import RECORD_VARIABLE, load_recording
from opsgraph.agents.models import ModelConfigError, build_chat_model
from opsgraph.agents.records import Diagnosis, Plan


def diagnose_and_plan(r: ModelReasoner) -> tuple[Diagnosis, Plan]:
    diagnosis = r.diagnose(redis_incident(), redis_snapshot(), FakeRead(), None)
    return diagnosis, r.plan(redis_incident(), diagnosis, cache_resource(), FakeRead(), None)


def test_a_recorded_run_replays_offline_to_the_same_answers(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    with openai_stub() as stub:
        stub.queue(
            StubReply(tool_calls=[("redis_info", {"resource": "cache"})], prompt_tokens=900, completion_tokens=20),
            StubReply(tool_calls=[("FinalDiagnosis", {**DIAGNOSIS_ANSWER, "confidence": 3})], prompt_tokens=1000),
            StubReply(tool_calls=[("FinalDiagnosis", DIAGNOSIS_ANSWER)], prompt_tokens=1100, completion_tokens=90),
            StubReply(tool_calls=[("FinalPlan", PLAN_ANSWER)], prompt_tokens=1300, completion_tokens=70),
        )
        env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "k", RECORD_VARIABLE: str(path)}
        live = ModelReasoner(
            build_chat_model("openai:gemma-3-270m", max_retries=0, env=env), inventory=cache_inventory()
        )
        diagnosis, plan = diagnose_and_plan(live)
    assert diagnosis.fallback is None and plan.fallback is None

    recording = load_recording(path)
    assert recording.source == "model" and recording.model == "gemma-3-270m"
    entries = recording.replies
    assert [(e.request.get("tool_choice"), e.error.status if e.error else None) for e in entries] == [
        (None, None),  # the investigation: read tools and the answer offered
        (None, None),  # an invalid answer (confidence 3) ...
        (None, 500),  # ... sent back once: by json_schema, which this server refuses (recorded with its status)
        ("FinalDiagnosis", None),  # then by a forced tool call
        (None, None),  # the plan, straight away
    ]
    assert entries[0].request["tools"][-1] == "FinalDiagnosis" and entries[0].prompt_messages == 2
    assert entries[2].request["response_format"] == "json_schema"
    assert [e.usage.input_tokens if e.usage else None for e in entries] == [900, 1000, None, 1100, 1300]
    assert all(e.prompt_digest and e.prompt_digest.startswith("sha256:") for e in entries)
    assert entries[0].tool_calls[0].name == "redis_info"

    replayed = ModelReasoner(build_chat_model(f"scripted:{path}", env={}), inventory=cache_inventory())
    again, plan_again = diagnose_and_plan(replayed)
    assert again.model_dump(exclude={"backend", "tokens"}) == diagnosis.model_dump(exclude={"backend", "tokens"})
    assert plan_again.steps == plan.steps and plan_again.summary == plan.summary
    for key in ("input_tokens", "output_tokens", "model_calls"):  # the server's counts, replayed
        assert again.tokens[key] == diagnosis.tokens[key] and plan_again.tokens[key] == plan.tokens[key]
    assert again.backend == "scripted:gemma-3-270m"  # a replay, named after what was recorded


def test_a_refused_request_is_recorded_and_replayed_with_its_status(tmp_path: Path) -> None:
    path = tmp_path / "refused.json"
    with openai_stub() as stub:  # no reading allowed: the answer is asked for directly, json_schema first
        stub.queue(StubReply(tool_calls=[("FinalDiagnosis", DIAGNOSIS_ANSWER)], prompt_tokens=700))
        env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "k", RECORD_VARIABLE: str(path)}
        model = build_chat_model("openai:tiny", max_retries=0, env=env)
        live = ModelReasoner(model, inventory=cache_inventory(), max_tool_steps=0)
        diagnosis = live.diagnose(redis_incident(), redis_snapshot(), FakeRead(), None)
    assert diagnosis.fallback is None
    refused, answered = load_recording(path).replies
    assert refused.error is not None and refused.error.status == 500
    assert refused.request["response_format"] == "json_schema"
    assert answered.request["tool_choice"] == "FinalDiagnosis"

    replay = build_chat_model(f"scripted:{path}", env={})
    replayed = ModelReasoner(replay, inventory=cache_inventory(), max_tool_steps=0)
    again = replayed.diagnose(redis_incident(), redis_snapshot(), FakeRead(), None)
    assert again.fallback is None and again.root_cause == diagnosis.root_cause
    assert list(replayed._loop.structured.refused) == ["json_schema"]  # the same path, offline


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not a model recording or list of replies"),
        (json.dumps({"source": "emulator", "model": "m", "replies": [{"txet": "typo"}]}), "replies.0.txet"),
        (json.dumps({"source": "gemini", "model": "m"}), "source"),
    ],
)
def test_a_file_that_is_not_a_recording_is_refused_naming_file_and_field(
    tmp_path: Path, content: str, named: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ModelConfigError, match=r"broken\.json") as refused:
        build_chat_model(f"scripted:{path}", env={})
    assert named in str(refused.value)
