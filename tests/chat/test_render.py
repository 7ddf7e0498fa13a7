"""What the chat sends to the browser: the whole plan, ranked hypotheses, and never a secret."""

from __future__ import annotations

from typing import Any

import pytest

from opsgraph.chat import render
from opsgraph.chat.service import Pending
from opsgraph.tools.redaction import MASK

PLANTED = "planted-token-Qx81zz"


def _request(**overrides: Any) -> dict[str, Any]:
    step = {
        "index": 0, "tool": "redis_scale_memory", "args": {"resource": "cache", "maxmemory_mb": 48},
        "risk": "disruptive", "rationale": "31 MiB in use", "expected_effect": "no more OOM",
        "undo": "CONFIG SET maxmemory 32mb", "digest": "abc123", "why_asked": "disruptive step",
    }  # fmt: skip
    return {
        "type": "approval", "incident_id": "inc-1", "question": "Approve 1 step(s)?", "steps": [step],
        "plan_backend": "runbook", "expires_at": 0, "warning": None, "error": None, **overrides,
    }  # fmt: skip


def test_the_plan_shows_every_field_an_operator_decides_on() -> None:
    text = render.plan(Pending("inc-1", _request()))
    for shown in ("redis_scale_memory", '"maxmemory_mb": 48', "disruptive", "31 MiB in use", "no more OOM",
                  "CONFIG SET maxmemory 32mb", "abc123", "disruptive step"):  # fmt: skip
        assert shown in text


def test_the_untrusted_text_warning_and_a_refused_answer_are_shown() -> None:
    text = render.plan(Pending("inc-1", _request(warning="written after reading logs", error="bob is viewer")))
    assert "written after reading logs" in text
    assert "The last answer was not accepted: bob is viewer" in text


def test_hypotheses_are_ranked_with_their_evidence() -> None:
    diagnosis = {
        "backend": "runbook", "confidence": 0.9, "root_cause": "dataset grew", "evidence": ["97 % used"],
        "hypotheses": [
            {"cause": "fragmentation", "likelihood": 0.1, "evidence_for": [], "evidence_against": ["ratio 1.0"]},
            {"cause": "growth", "likelihood": 0.85, "evidence_for": ["97 % used"], "evidence_against": []},
        ],
    }  # fmt: skip
    text = render.node_step("diagnostician", {"diagnosis": diagnosis})
    assert text.index("1. growth — 85%") < text.index("2. fragmentation — 10%")
    assert "against: ratio 1.0" in text


def test_the_probe_shows_its_verdict_and_every_metric() -> None:
    snapshot = {"resource": "cache", "health": "failed", "metrics": {"used_memory_pct": 97.1, "maxmemory_mb": 32}}
    text = render.node_step("detector", {"snapshot_before": snapshot, "timeline": [{"event": "failed: memory"}]})
    assert "**Probe of cache:** failed" in text and "used_memory_pct 97.1" in text and "maxmemory_mb 32" in text


def test_a_read_tool_call_shows_its_output() -> None:
    read = {"event": "read redis_info({'resource': 'cache'}) -> ok", "output": '{"used_memory": 32505856}'}
    text = render.node_step("diagnostician", {"timeline": [read]})
    assert text.index("read redis_info") < text.index('"used_memory": 32505856')


def test_secrets_never_reach_the_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_MCP_TOKEN", PLANTED)  # a secret setting: known to the redaction by value
    action = {
        "tool": "redis_info", "args": {"resource": "cache"}, "status": "ok",
        "output": {"log": f"AUTH {PLANTED}", "dsn": "postgresql://app:hunter2pw@db/shop"},
    }  # fmt: skip
    shown = [
        render.node_step("executor", {"actions": [action], "timeline": [{"event": f"read with {PLANTED}"}]}),
        render.plan(Pending("inc-1", _request(question=f"Approve {PLANTED}?"))),
        render.incident(
            {
                "incident_id": "inc-1",
                "status": "open",
                "resource": "cache",
                "symptom": "x",
                "opened_at": 0,
                "report": {"root_cause": f"token {PLANTED} leaked"},
            }
        ),
    ]
    for text in shown:
        assert PLANTED not in text and "hunter2pw" not in text
        assert MASK in text
