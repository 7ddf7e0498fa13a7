"""`opsgraph eval`: the scenarios of `evals/scenarios/`, each on fresh servers, scored as LangSmith experiments."""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from opsgraph.cli.app import JsonOption, app
from opsgraph.cli.console import err, fail, out, print_json_lines, progress
from opsgraph.evals.scenario import ScenarioError, load_scenarios

BACKENDS = ("runbook", "model")


def _backends(values: list[str] | None) -> list[str] | None:
    """Each --backend is one of BACKENDS (checked here: the Backend enum lives with the runner, a slow import)."""
    for value in values or []:
        if value not in BACKENDS:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(BACKENDS)}")
    return values


class FailOn(StrEnum):
    """Which runs make `opsgraph eval` exit 1."""

    ANY = "any"  # any run that did not pass
    UNSAFE = "unsafe"  # only a run that took, or had to be stopped from taking, a forbidden step


def failed(fail_on: FailOn, runs: list[tuple[bool, float | bool | None]]) -> bool:
    """Whether `opsgraph eval` exits 1, given each run's (passed, unsafe count)."""
    unsafe = any(count for _, count in runs)
    return unsafe or (fail_on is FailOn.ANY and not all(passed for passed, _ in runs))


@app.command("eval", rich_help_panel="Evals")
def eval_command(
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", "-s", help="Run only this scenario (repeat for more).")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="Run only scenarios carrying this tag (repeat: all of them)."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            callback=_backends,
            help="runbook (default) or model (OPSGRAPH_MODEL, or --recordings); repeat for both, side by side.",
        ),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs per scenario: pass@1 and pass^k.")] = 1,
    as_json: JsonOption = False,
    report_dir: Annotated[
        Path, typer.Option("--out", help="Where report.md, results.json and the PNG charts go.")
    ] = Path("evals/results"),
    recordings: Annotated[
        Path | None,
        typer.Option(
            "--recordings",
            help="With --backend model: scenario NAME replays DIR/NAME.json (scripted:); the others are not run.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            help="Exit 1 when any run failed (default), or only when a run did something unsafe (a weak model's runs).",
        ),
    ] = FailOn.ANY,
) -> None:
    """Run the eval scenarios unattended (--approval none, forbidden tools denied) and score them.

    Progress on stderr; the results (--json: one object per run) on stdout; the report in --out; exit 1 if a
    run failed (with --fail-on unsafe: only if a run took or let through a forbidden step).
    """
    # LangGraph and LangSmith take seconds to import: only this command pays for them.
    from opsgraph.agents.models import model_spec_from_env
    from opsgraph.evals.experiment import run_experiment
    from opsgraph.evals.report import results_table, write_report
    from opsgraph.evals.runner import Backend

    try:
        scenarios = load_scenarios(names=scenario or None, tags=tag or None)
    except ScenarioError as error:
        fail(str(error), 2)
    if not scenarios:
        fail(f"no scenario carries every tag of {tag}", 2)
    backends = [Backend(name) for name in dict.fromkeys(backend or ["runbook"])]
    if recordings is not None and not recordings.is_dir():
        fail(f"--recordings {recordings}: not a folder", 2)
    if Backend.MODEL in backends and recordings is None and model_spec_from_env() is None:
        fail("--backend model needs a model: OPSGRAPH_MODEL=provider:model (or scripted:PATH), or --recordings DIR", 2)
    with tempfile.TemporaryDirectory(prefix="opsgraph-eval-") as workdir:
        experiments = [
            run_experiment(scenarios, chosen, Path(workdir), repeat=repeat, recordings=recordings, progress=progress)
            for chosen in backends
        ]
    files = write_report(experiments, report_dir)
    if as_json:
        print_json_lines(
            {
                "scenario": run.record.scenario,
                "backend": run.record.backend,
                "repetition": run.record.repetition,
                **{key: score.score for key, score in run.scores.items()},
                "why": run.scores["pass"].comment,
            }
            for experiment in experiments
            for run in experiment.runs
        )
    else:
        for experiment in experiments:
            out.print(escape(f"{experiment.backend.value}:"))
            out.print(escape(results_table(experiment)), soft_wrap=True)
    charts = ", ".join(chart.name for chart in files.charts)
    err.print(escape(f"report: {files.markdown}, {files.results.name}, {charts}"), soft_wrap=True)
    if failed(fail_on, [(run.passed, run.scores["unsafe"].score) for e in experiments for run in e.runs]):
        raise typer.Exit(1)
