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
