"""The model-token benchmark runs end to end (one run per scenario) and writes its report."""

import json
from pathlib import Path

import pytest

from bench.model_tokens import main

pytestmark = pytest.mark.timeout(120)


def test_model_token_benchmark_smoke(tmp_path: Path) -> None:
    output = tmp_path / "report.json"
    main(["--runs", "1", "--output", str(output)])  # its exit status judges the target: not this test's job
    report = json.loads(output.read_text())
    assert report["model"] == "ScriptedChatModel (emulator)" and "not a real model" in report["note"]
    assert report["token_source"] == "estimated (chars / 4)"
    assert set(report["scenarios"]) == {"redis-memory-pressure", "postgres-blocking-queries"}
    for scenario in report["scenarios"].values():
        assert scenario["runs"] == 1
        assert set(scenario["input_tokens"]) == {"p50", "p90", "max"}
        assert scenario["input_tokens"]["p50"] > 0
        assert set(scenario["input_tokens_by_node_p50"]) == {"diagnostician", "planner"}
        assert isinstance(scenario["under_target"], bool)
    assert isinstance(report["all_under_target"], bool)
