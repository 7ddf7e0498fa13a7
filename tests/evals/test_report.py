"""The report is written from scored runs: the Markdown tables, results.json and the PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsgraph.evals.evaluators import score_all
from opsgraph.evals.experiment import Experiment, ScoredRun
from opsgraph.evals.runner import Action, Backend, IncidentRun, Phases, Proposal, RunRecord
from opsgraph.evals.scenario import Expectation

RESOLVE = Expectation(symptom="redis_memory_pressure", root_cause="maxmemory", actions=["redis_scale_memory"])
CONTROL = Expectation(detected=False, outcome="none")
PNG = b"\x89PNG\r\n\x1a\n"


def run(scenario: str, backend: str, repetition: int, fixed: bool, expect: Expectation, **fields: Any) -> ScoredRun:
    incidents = []
    if expect is RESOLVE:
        incidents.append(
            IncidentRun(
                incident_id=f"inc-{scenario}-{repetition}",
                resource="cache",
                opened=True,
                symptom="redis_memory_pressure",
                outcome="resolved" if fixed else "escalated",
                mttd_s=0.1 * repetition,
                mttr_s=0.4 if fixed else None,
                root_cause="maxmemory is full",
                backend=backend,
                actions=[Action(tool="redis_scale_memory", args={}, status="ok", risk="disruptive")] if fixed else [],
                proposals=[
                    Proposal(
                        tool="redis_scale_memory",
                        args={},
                        backend=backend,
                        risk="disruptive",
                        verdict="run",
                        own_verdict="run",
                        reason="test",
                    )
                ],
                reads=2,
                input_tokens=1200 if backend == "model" else 0,
                output_tokens=300 if backend == "model" else 0,
                fallbacks=[] if fixed else ["the model's plan did not validate"],
            )
        )
    record = RunRecord(
        scenario=scenario,
        backend=backend,
        reasoning=backend,
        repetition=repetition,
        tags=["easy", "redis"] if expect is RESOLVE else ["control"],
        incidents=incidents,
        recovered=fixed,
        recovery_detail="writes succeed" if fixed else "writes fail",
        phases=Phases(setup_s=0.5, inject_s=0.1, opsgraph_s=1.5, check_s=2.0, teardown_s=0.2),
        **fields,
    )
    return ScoredRun(record, score_all(record, expect))


def experiment(backend: Backend, runs: list[ScoredRun]) -> Experiment:
    return Experiment(backend=backend, name=f"opsgraph-{backend.value}", uploaded=False, runs=runs)


def test_one_backend_report(tmp_path: Path) -> None:
    runbook = experiment(
        Backend.RUNBOOK,
        [
            run("redis-memory-pressure", "runbook", 1, True, RESOLVE),
            run("redis-memory-pressure", "runbook", 2, False, RESOLVE),
            run("no-fault-control", "runbook", 1, True, CONTROL),
        ],
    )
    files = write(tmp_path, [runbook])
    text = files["report.md"]
    assert "| scenario | pass | MTTD | MTTR | actions | detection | root cause | mitigation | time |" in text
    # Medians over the two repeats: MTTD of 0.1 and 0.2 s; MTTR only from the run that recovered.
    row = "| `redis-memory-pressure` | 1/2 | 0.15 s | 0.40 s | `redis_scale_memory` | 2/2 | 2/2 | 1/2 | 1.50 s |"
    assert row in text
    assert "| `no-fault-control` | 1/1 | - | - | none | 1/1 | n/a | 1/1 |" in text
    assert "| `redis-memory-pressure` | 0.50 | no |" in text  # pass@1, pass^k
    assert "| redis | 1/2 (50 %) |" in text and "| control | 1/1 (100 %) |" in text
    assert "| `redis-memory-pressure` | runbook | 0.50 s | 0.10 s | 2.00 s | 0.20 s | 2.80 s | 1.50 s |" in text
    failures = text[text.index("## Failures") :]
    assert "`redis-memory-pressure` (runbook #2): failed: actions_right, outcome_right, recovered" in failures
    assert "recovered: writes fail" in failures and "no-fault-control" not in failures
    assert "Side by side" not in text
    assert sorted(name for name in files if name.endswith(".png")) == ["mttd_mttr.png", "pass_by_tag.png"]
    results = json.loads(files["results.json"])
    [only] = results["experiments"]
    assert only["pass_rates"]["redis-memory-pressure"] == {"runs": 2, "passes": 1, "pass@1": 0.5, "pass^k": False}
    assert only["runs"][1]["scores"]["pass"]["score"] is False
    assert RunRecord.model_validate(only["runs"][0]["record"]).incidents[0].mttd_s == 0.1


def test_runbook_and_model_side_by_side(tmp_path: Path) -> None:
    runbook = experiment(Backend.RUNBOOK, [run("redis-memory-pressure", "runbook", 1, True, RESOLVE)])
    model = experiment(Backend.MODEL, [run("redis-memory-pressure", "model", 1, False, RESOLVE)])
    model.skipped = ["no-fault-control"]
    files = write(tmp_path, [runbook, model])
    text = files["report.md"]
    side = text[text.index("## Side by side") :]
    assert "| scenario | runbook pass | model pass | runbook MTTR | model MTTR | runbook tokens |" in side
    assert "| `redis-memory-pressure` | 1/1 | 0/1 | 0.40 s | - | 0 | 1500 | 0 | 1 | n/a | 1/1 | 0 | 0 |" in side
    assert "Not run (no recording): `no-fault-control`." in text
    assert "backends.png" in files
    assert "![backends](backends.png)" in text


def write(folder: Path, experiments: list[Experiment]) -> dict[str, Any]:
    """The report's files by name: text for .md/.json, checked to be real PNGs for the charts."""
    from opsgraph.evals.report import write_report

    report = write_report(experiments, folder / "out")
    files: dict[str, Any] = {"report.md": report.markdown.read_text(), "results.json": report.results.read_text()}
    for chart in report.charts:
        assert chart.read_bytes().startswith(PNG), chart
        assert chart.stat().st_size > 5000, chart  # a drawn chart, not an empty canvas
        files[chart.name] = chart
    assert sorted(path.name for path in (folder / "out").iterdir()) == sorted(files)
    return files
