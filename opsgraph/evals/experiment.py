"""A suite run as a LangSmith experiment: the scenarios are the dataset, a scenario run is the target.

`langsmith.evaluate` drives the runs (one example per scenario, `num_repetitions` for
repeats, one at a time: every run brings up its own servers) and applies the evaluators of
`evaluators` as LangSmith evaluators, pass@1 and pass^k as summary evaluators. Offline —
no `LANGSMITH_API_KEY`, the default and every test — it runs with `upload_results=False`
on local `Example` objects and a client that never calls out. With a key, the dataset is
created or brought up to date on LangSmith (examples matched by scenario name) and the
experiment, traces included, is uploaded. Either way the scores come back from LangSmith's
own result rows, so the report shows what the experiment holds.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langsmith import Client, evaluate, tracing_context
from langsmith.evaluation import EvaluationResult, EvaluationResults
from langsmith.schemas import Example, LangSmithInfo, Run

from opsgraph.evals.evaluators import EVALUATORS, Evaluator, PassRate, Score, pass_rates, passed
from opsgraph.evals.runner import Backend, Progress, RunRecord, reasoning_for, run_scenario, to_stderr
from opsgraph.evals.scenario import EvalScenario, Expectation

DATASET = "opsgraph-evals"
# Fixed, so that a scenario's local example id is the same in every run.
_NAMESPACE = uuid.UUID("6f1c2d0e-5b7a-4c3e-9d1f-0a2b3c4d5e6f")


def examples(scenarios: Sequence[EvalScenario]) -> list[Example]:
    """The dataset: one example per scenario — its name as input, its expectation as the reference output."""
    dataset_id = uuid.uuid5(_NAMESPACE, DATASET)
    return [
        Example(
            id=uuid.uuid5(_NAMESPACE, scenario.name),
            dataset_id=dataset_id,
            inputs={"scenario": scenario.name, "description": scenario.description},
            outputs=scenario.expect.model_dump(mode="json"),
            metadata={"tags": sorted(scenario.tags.all()), **scenario.tags.model_dump(exclude={"extra"})},
        )
        for scenario in scenarios
    ]


def as_langsmith(evaluator: Evaluator) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """The evaluator in LangSmith's form: the run's outputs (a RunRecord) and the example's (the expectation)."""

    def score(outputs: dict[str, Any], reference_outputs: dict[str, Any]) -> dict[str, Any]:
        return evaluator(RunRecord.model_validate(outputs), Expectation.model_validate(reference_outputs)).as_dict()

    score.__name__ = evaluator.__name__
    return score


def pass_at_k(runs: list[Run], examples: list[Example]) -> EvaluationResults:
    """LangSmith summary evaluator: pass@1 and pass^k, averaged over the scenarios."""
    scored = [
        (RunRecord.model_validate(run.outputs), Expectation.model_validate(example.outputs))
        for run, example in zip(runs, examples, strict=True)
        if run.outputs
    ]
    rates = pass_rates((record.scenario, passed(record, expect).score is True) for record, expect in scored)
    count = len(rates) or 1
    return EvaluationResults(
        results=[
            EvaluationResult(key="pass@1", score=sum(rate.pass_at_1 for rate in rates.values()) / count),
            EvaluationResult(key="pass^k", score=sum(rate.pass_hat_k for rate in rates.values()) / count),
        ]
    )


@dataclass(frozen=True)
class ScoredRun:
    record: RunRecord
    scores: dict[str, Score]

    @property
    def passed(self) -> bool:
        return self.scores["pass"].score is True


@dataclass
class Experiment:
    """One backend over the selected scenarios: every run with its scores."""

    backend: Backend
    name: str
    uploaded: bool
    runs: list[ScoredRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no recording for the model backend

    def pass_rates(self) -> dict[str, PassRate]:
        return pass_rates((run.record.scenario, run.passed) for run in self.runs)


def _offline_client() -> Client:
    """A client that never calls LangSmith: its server info given, nothing batched for upload."""
    return Client(info=LangSmithInfo(), auto_batch_tracing=False)


def _remote_examples(client: Client, scenarios: Sequence[EvalScenario]) -> list[Example]:
    """The dataset on LangSmith, created or brought up to date (matched by scenario name), narrowed to `scenarios`."""
    if client.has_dataset(dataset_name=DATASET):
        dataset = client.read_dataset(dataset_name=DATASET)
    else:
        dataset = client.create_dataset(DATASET, description="OpsGraph's fault scenarios (evals/scenarios/)")
    held = {e.inputs["scenario"]: e for e in client.list_examples(dataset_id=dataset.id) if e.inputs}
    for example in examples(scenarios):
        assert example.inputs is not None  # built with inputs
        inputs, outputs, metadata = example.inputs, example.outputs, example.metadata
        current = held.get(inputs["scenario"])
        if current is None:
            client.create_examples(
                dataset_id=dataset.id, examples=[{"inputs": inputs, "outputs": outputs, "metadata": metadata}]
            )
        elif (current.inputs, current.outputs, current.metadata) != (inputs, outputs, metadata):
            client.update_example(current.id, inputs=inputs, outputs=outputs, metadata=metadata)
    wanted = {scenario.name for scenario in scenarios}
    found = [e for e in client.list_examples(dataset_id=dataset.id) if e.inputs and e.inputs["scenario"] in wanted]
    return sorted(found, key=lambda e: str(e.inputs and e.inputs["scenario"]))


def _scores(row: Any) -> ScoredRun:
    """One LangSmith result row back as a run record and its scores; an evaluator that broke is an error here."""
    run = row["run"]
    name = row["example"].inputs["scenario"]
    if not run.outputs:
        raise RuntimeError(f"{name}: the run left no record ({run.error})")
    scores = {}
    for result in row["evaluation_results"]["results"]:
        if result.extra and result.extra.get("error"):
            raise RuntimeError(f"{name}: evaluator {result.key} failed: {result.comment}")
        scores[result.key] = Score(result.key, result.score, result.comment or "")
    if len(scores) != len(EVALUATORS):
        raise RuntimeError(f"{name}: {len(EVALUATORS)} evaluators, but only these scored: {sorted(scores)}")
    return ScoredRun(RunRecord.model_validate(run.outputs), scores)


def run_experiment(
    scenarios: Sequence[EvalScenario],
    backend: Backend,
    workdir: Path,
    *,
    repeat: int = 1,
    recordings: Path | None = None,
    upload: bool | None = None,
    progress: Progress = to_stderr,
) -> Experiment:
    """Every scenario `repeat` times on `backend` as one LangSmith experiment (uploaded only with a key)."""
    if repeat < 1:
        raise ValueError(f"repeat must be 1 or more, got {repeat}")
    upload = bool(os.environ.get("LANGSMITH_API_KEY")) if upload is None else upload
    reasoning = {s.name: r for s in scenarios if (r := reasoning_for(backend, s, recordings)) is not None}
    runnable = [s for s in scenarios if s.name in reasoning]
    skipped = [s.name for s in scenarios if s.name not in reasoning]
    experiment = Experiment(backend, f"opsgraph-{backend.value}", upload, skipped=skipped)
    for name in experiment.skipped:
        progress(f"{name} [{backend.value}]: skipped, no recording in {recordings}")
    if not runnable:
        return experiment
    by_name = {s.name: s for s in runnable}
    started: Counter[str] = Counter()
    total = len(runnable) * repeat

    def target(inputs: dict[str, Any]) -> dict[str, Any]:
        scenario = by_name[inputs["scenario"]]
        started[scenario.name] += 1
        repetition = started[scenario.name]
        progress(f"{scenario.name} [{backend.value} #{repetition}]: run {sum(started.values())} of {total}")
        folder = workdir / backend.value / f"{scenario.name}-{repetition}"
        # Offline, LangSmith still traces the target "locally", and LangChain would then trace every node
        # of the graph and try to send each run: off inside, so that a run costs what it costs.
        with tracing_context(enabled=upload):
            record = run_scenario(
                scenario, folder, reasoning[scenario.name], backend=backend, repetition=repetition, progress=progress
            )
        verdict = passed(record, scenario.expect)
        word = "PASS" if verdict.score else "FAIL"
        progress(f"{scenario.name} [{backend.value} #{repetition}]: {word} {verdict.comment}")
        return record.model_dump(mode="json")

    client = Client() if upload else _offline_client()
    data = _remote_examples(client, runnable) if upload else examples(runnable)
    # LangSmith prints where the experiment is; stdout is the command's: stderr with a URL, nowhere offline.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr if upload else io.StringIO()):
        warnings.filterwarnings("ignore", message=".*upload_results.*")
        results = evaluate(
            target,
            data=data,
            evaluators=[as_langsmith(evaluator) for evaluator in EVALUATORS],
            summary_evaluators=[pass_at_k],
            experiment_prefix=experiment.name,
            metadata={"backend": backend.value, "repeat": repeat, "scenarios": len(runnable)},
            max_concurrency=0,  # one run at a time, in this thread: each brings up its own servers
            num_repetitions=repeat,
            client=client,
            upload_results=upload,
        )
        experiment.runs = [_scores(row) for row in results]
    if upload:  # offline, LangSmith names the local copy at random: the prefix says more
        experiment.name = results.experiment_name
    return experiment
