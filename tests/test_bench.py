"""The benchmark runs end to end (one run) and writes its percentile report."""

import json
from pathlib import Path

from bench.redis_memory_pressure import main


def test_benchmark_smoke(tmp_path: Path) -> None:
    output = tmp_path / "report.json"
    main(["--runs", "1", "--output", str(output)])  # its exit status judges speed: not this test's job
    report = json.loads(output.read_text())
    assert report["runs"] == 1
    assert set(report["mttr_s"]) == {"p50", "p90", "max"}
    assert 0 < report["graph_overhead_share"]["p50"] < 1  # a share of the wall time, whatever the machine


def test_alert_intake_benchmark_smoke(tmp_path: Path) -> None:
    """A few repeats through a real `opsgraph serve`: one incident, every repeat deduplicated, ratios reported."""
    from bench.alert_intake import main as alert_main

    output = tmp_path / "alerts.json"
    assert alert_main(["--repeats", "5", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["incidents"] == 1 and report["deduplicated"] == 5
    assert report["repeat_p50_vs_floor"] > 0 and set(report["repeat_ms"]) == {"p50", "p90", "max"}
