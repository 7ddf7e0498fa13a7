"""The suite's report: `report.md`, `results.json` and PNG charts, written from the scored runs.

The main table has the seed's columns (scenario, pass, MTTD, MTTR, actions) and AIOpsLab's
(detection, localization / root cause, mitigation, time), so numbers can be set side by
side. With repeats a cell counts runs (`2/3`) and times are medians. Mitigation is the
scenario's own recovery check, never OpsGraph's verifier; time is OpsGraph's wall seconds
from the scan to its report. The charts are drawn with matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsgraph.evals.experiment import Experiment, ScoredRun


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    results: Path
    charts: list[Path]


def _by_scenario(experiment: Experiment) -> dict[str, list[ScoredRun]]:
    grouped: dict[str, list[ScoredRun]] = {}
    for run in experiment.runs:
        grouped.setdefault(run.record.scenario, []).append(run)
    return grouped


def _values(runs: Sequence[ScoredRun], key: str) -> list[float]:
    return [float(score) for run in runs if (score := run.scores[key].score) is not None]


def _median(runs: Sequence[ScoredRun], key: str) -> float | None:
    values = _values(runs, key)
    return statistics.median(values) if values else None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _count(runs: Sequence[ScoredRun], key: str) -> str:
    """`k/n` runs scoring true; n/a when the evaluator does not apply to the scenario."""
    values = [run.scores[key].score for run in runs if run.scores[key].score is not None]
    return f"{sum(bool(v) for v in values)}/{len(values)}" if values else "n/a"


def _actions(runs: Sequence[ScoredRun]) -> str:
    tools = sorted({action.tool for run in runs for action in run.record.taken})
    return ", ".join(f"`{tool}`" for tool in tools) or "none"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


RESULT_HEADER = [
    "scenario",
    "pass",
    "MTTD",
    "MTTR",
    "actions",
    "detection",
    "root cause",
    "mitigation",
    "time",
    "steps",
    "tokens",
    "unsafe",
]


def results_table(experiment: Experiment) -> str:
    """One row per scenario: the seed's columns, then AIOpsLab's, then cost and safety."""
    lines = [_row(*RESULT_HEADER), _row(*["---"] * len(RESULT_HEADER))]
    for scenario, runs in _by_scenario(experiment).items():
        time_s = statistics.median(run.record.phases.opsgraph_s for run in runs)
        lines.append(
            _row(
                f"`{scenario}`",
                _count(runs, "pass"),
                _seconds(_median(runs, "time_to_detect_s")),
                _seconds(_median(runs, "time_to_recover_s")),
                _actions(runs),
                _count(runs, "detected"),
                _count(runs, "root_cause_right"),
                _count(runs, "recovered"),
                _seconds(time_s),
                f"{_median(runs, 'steps') or 0:g}",
                f"{_median(runs, 'tokens') or 0:g}",
                f"{sum(_values(runs, 'unsafe')):g}",
            )
        )
    return "\n".join(lines)


def _tags(experiments: Sequence[Experiment]) -> list[str]:
    return sorted({tag for e in experiments for run in e.runs for tag in run.record.tags})


def _tag_rate(experiment: Experiment, tag: str) -> tuple[int, int]:
    runs = [run for run in experiment.runs if tag in run.record.tags]
    return sum(run.passed for run in runs), len(runs)


def _percent(passes: int, runs: int) -> str:
    return f"{passes}/{runs} ({100 * passes / runs:.0f} %)" if runs else "-"


def _markdown(experiments: Sequence[Experiment], generated: str) -> str:
    names = [e.backend.value for e in experiments]
    repeats = max((run.record.repetition for e in experiments for run in e.runs), default=1)
    scenarios = sorted({run.record.scenario for e in experiments for run in e.runs})
    parts = [
        "# OpsGraph evals",
        "",
        f"{generated}: {len(scenarios)} scenarios x {repeats} run(s) each, backends {', '.join(names)};"
        " unattended (`--approval none`), the scenario's forbidden tools denied by policy.",
        "MTTD: fault injected → incident opened. MTTR: incident opened → recovered (OpsGraph's verifier, counted"
        " when the scenario's own check agrees). Mitigation: the scenario's own check through its settle window."
        " Time: OpsGraph's seconds per run. Unsafe: forbidden steps taken, or let through by OpsGraph's own policy.",
    ]
    for experiment in experiments:
        uploaded = "uploaded to LangSmith" if experiment.uploaded else "run locally, not uploaded"
        parts += ["", f"## {experiment.backend.value} (experiment `{experiment.name}`, {uploaded})", ""]
        parts.append(results_table(experiment) if experiment.runs else "no scenario ran")
        if experiment.skipped:
            parts += ["", f"Not run (no recording): {', '.join(f'`{name}`' for name in experiment.skipped)}."]
    columns = [f"{name} {what}" for name in names for what in ("pass@1", "pass^k")]
    parts += ["", "## pass@1 and pass^k", "", _row("scenario", *columns)]
    parts.append(_row(*["---"] * (1 + 2 * len(names))))
    rates = [e.pass_rates() for e in experiments]
    for scenario in scenarios:
        cells = []
        for rate in rates:
            got = rate.get(scenario)
            cells += [f"{got.pass_at_1:.2f}", "yes" if got.pass_hat_k else "no"] if got else ["-", "-"]
        parts.append(_row(f"`{scenario}`", *cells))
    parts += ["", "## Pass rate per tag", "", _row("tag", *names), _row(*["---"] * (1 + len(names)))]
    for tag in _tags(experiments):
        parts.append(_row(tag, *(_percent(*_tag_rate(e, tag)) for e in experiments)))
    if len(experiments) > 1:
        parts += ["", "## Side by side", "", _side_by_side(experiments)]
    parts += ["", "## The suite's own overhead per run (medians)", "", _overhead(experiments)]
    parts += ["", "## Failures", "", _failures(experiments)]
    return "\n".join(parts) + "\n"


def _side_by_side(experiments: Sequence[Experiment]) -> str:
    names = [e.backend.value for e in experiments]
    what = ("pass", "MTTR", "tokens", "fallbacks", "own diagnosis + plan", "unsafe")
    header = ["scenario", *(f"{n} {w}" for w in what for n in names)]
    lines = [_row(*header), _row(*["---"] * len(header))]
    grouped = [_by_scenario(e) for e in experiments]
    for scenario in sorted({s for g in grouped for s in g}):
        cells: list[str] = []
        for key in ("pass", "time_to_recover_s", "tokens", "fallbacks", "own_reasoning", "unsafe"):
            for runs in (g.get(scenario, []) for g in grouped):
                if not runs:
                    cells.append("-")
                elif key in ("pass", "own_reasoning"):
                    cells.append(_count(runs, key))
                elif key == "time_to_recover_s":
                    cells.append(_seconds(_median(runs, key)))
                else:
                    cells.append(f"{sum(_values(runs, key)):g}")
        lines.append(_row(f"`{scenario}`", *cells))
    return "\n".join(lines)


def _overhead(experiments: Sequence[Experiment]) -> str:
    header = ["scenario", "backend", "setup", "inject", "check", "teardown", "suite", "OpsGraph"]
    lines = [_row(*header), _row(*["---"] * len(header))]
    for experiment in experiments:
        for scenario, runs in _by_scenario(experiment).items():
            phases = [run.record.phases for run in runs]
            cells = [
                statistics.median(getattr(p, name) for p in phases)
                for name in ("setup_s", "inject_s", "check_s", "teardown_s", "overhead_s", "opsgraph_s")
            ]
            lines.append(_row(f"`{scenario}`", experiment.backend.value, *(_seconds(c) for c in cells)))
    return "\n".join(lines)


def _failures(experiments: Sequence[Experiment]) -> str:
    lines = []
    for experiment in experiments:
        for run in experiment.runs:
            if run.passed:
                continue
            record = run.record
            why = [f"{s.key}: {s.comment}" for s in run.scores.values() if s.key != "pass" and _wrong(s.key, s.score)]
            lines.append(
                f"- `{record.scenario}` ({experiment.backend.value} #{record.repetition}): {run.scores['pass'].comment}"
            )
            lines += [f"  - {line}" for line in why]
    return "\n".join(lines) or "none"


def _wrong(key: str, score: object) -> bool:
    if key == "false_positive":
        return score is True
    if key == "unsafe":
        return isinstance(score, float) and score > 0
    return score is False


def _results(experiments: Sequence[Experiment], generated: str) -> dict[str, Any]:
    return {
        "generated_at": generated,
        "experiments": [
            {
                "name": e.name,
                "backend": e.backend.value,
                "uploaded": e.uploaded,
                "skipped": e.skipped,
                "pass_rates": {
                    scenario: {"runs": r.runs, "passes": r.passes, "pass@1": r.pass_at_1, "pass^k": r.pass_hat_k}
                    for scenario, r in e.pass_rates().items()
                },
                "runs": [
                    {
                        "record": run.record.model_dump(mode="json"),
                        "scores": {key: {"score": s.score, "comment": s.comment} for key, s in run.scores.items()},
                    }
                    for run in e.runs
                ],
            }
            for e in experiments
        ],
    }


def _charts(experiments: Sequence[Experiment], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    charts = []
    scenarios = sorted({run.record.scenario for e in experiments for run in e.runs})
    grouped = [_by_scenario(e) for e in experiments]
    series = [
        (f"{e.backend.value} {label}", [_median(g.get(s, []), key) for s in scenarios])
        for e, g in zip(experiments, grouped, strict=True)
        for label, key in (("MTTD", "time_to_detect_s"), ("MTTR", "time_to_recover_s"))
    ]
    title = "MTTD and MTTR per scenario (median)"
    charts.append(_bars(plt, out / "mttd_mttr.png", title, "seconds", scenarios, series))
    tags = _tags(experiments)
    rates = [
        (e.backend.value, [100 * p / n if n else None for p, n in (_tag_rate(e, t) for t in tags)]) for e in experiments
    ]
    charts.append(_bars(plt, out / "pass_by_tag.png", "Pass rate per tag", "% passed", tags, rates, percent=True))
    if len(experiments) > 1:
        pass_at_1 = [
            (e.backend.value, [100 * r.pass_at_1 if (r := e.pass_rates().get(s)) else None for s in scenarios])
            for e in experiments
        ]
        title = " vs ".join(e.backend.value for e in experiments) + ": pass@1 per scenario"
        charts.append(_bars(plt, out / "backends.png", title, "pass@1 (%)", scenarios, pass_at_1, percent=True))
    return charts


def _bars(
    plt: Any,
    path: Path,
    title: str,
    unit: str,
    labels: list[str],
    series: list[tuple[str, list[float | None]]],
    percent: bool = False,
) -> Path:
    """Grouped bars, one group per label, one bar per series; a missing value is left out (no bar)."""
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) * max(1, len(series)) / 2 + 3), 4.5))
    width = 0.8 / max(1, len(series))
    for n, (name, values) in enumerate(series):
        positions = [i + (n - (len(series) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(positions, [float("nan") if v is None else v for v in values], width, label=name)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(unit)
    if percent:
        axes.set_ylim(0, 105)
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(experiments: Sequence[Experiment], out: Path) -> ReportFiles:
    """`out/report.md`, `out/results.json` and the charts, for one or more backends' experiments."""
    out.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    markdown = out / "report.md"
    charts = _charts(experiments, out)
    body = _markdown(experiments, generated)
    body += "\n" + "\n".join(f"![{chart.stem}]({chart.name})" for chart in charts) + "\n"
    markdown.write_text(body)
    results = out / "results.json"
    results.write_text(json.dumps(_results(experiments, generated), indent=1) + "\n")
    return ReportFiles(markdown, results, charts)
