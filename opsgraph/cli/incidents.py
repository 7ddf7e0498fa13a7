"""Commands that run incidents: fix, demo, watch, approve, reject, revise, and the incident ledger."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opsgraph.cli.app import (
    SCENARIO_HELP,
    ApprovalOption,
    ApproverOption,
    InventoryOption,
    JsonOption,
    StateOption,
    app,
    incidents_app,
    inventory_or_exit,
    local_stack,
    nonnegative_seconds,
    positive_seconds,
)
from opsgraph.cli.console import (
    EventLog,
    err,
    fail,
    out,
    print_json_lines,
    progress,
    show_node,
    show_report,
    terminal_approver,
)
from opsgraph.cli.faults import aim_or_exit, inject_scenario
from opsgraph.graph.ledger import Ledger
from opsgraph.graph.policy import ApprovalMode
from opsgraph.tools.redaction import redact_value

if TYPE_CHECKING:  # the runtime imports LangGraph (seconds): only commands that run graphs pay for it
    from opsgraph.graph.runtime import RunResult


def run_fix(
    inventory: Path,
    state_dir: Path,
    approval: ApprovalMode,
    as_json: bool,
    approver: str | None,
    fault_started_at: float | None = None,
) -> list[dict[str, Any]]:
    # LangGraph takes seconds to import: only the commands that run graphs pay for it.
    from opsgraph.graph.context import Context
    from opsgraph.graph.fixing import fix_all, summary

    inventory_or_exit(inventory)  # fail early and clearly on a bad file
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    results = fix_all(context, terminal_approver(approver), show_node, fault_started_at)
    summaries = [summary(result) for result in results]
    if as_json:
        print_json_lines(summaries)
    else:
        for record in summaries:
            _show_summary(record)
    if not summaries:
        err.print("every resource is healthy: nothing to fix")
    return summaries


def _show_summary(record: dict[str, Any]) -> None:
    if "fingerprint" in record:  # a full incident report
        show_report(record)
    else:
        out.print(escape(f"{record['incident_id']}: {record['outcome']} {record.get('outcome_detail') or ''}"))


@app.command(rich_help_panel="Incidents")
def fix(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    as_json: JsonOption = False,
    approver: ApproverOption = None,
) -> None:
    """Scan, then run one incident graph per unhealthy resource (asking here before risky steps)."""
    run_fix(inventory, state_dir, approval, as_json, approver)


@app.command(rich_help_panel="Incidents")
def demo(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    as_json: JsonOption = False,
    approver: ApproverOption = None,
    gcp_emulator: Annotated[
        bool,
        typer.Option(
            "--gcp-emulator",
            help=(
                "Run a gcp-* scenario on the local GCP emulator (no GCP project is reached): the emulator and the "
                "real servers behind the instances' data planes start for the demo and stop after it."
            ),
        ),
    ] = False,
) -> None:
    """Bring up the local stack, inject the fault, and fix it: detect → diagnose → approve → fix → verify."""
    # Load the graph machinery before the fault exists, so MTTD measures detection, not imports.
    import opsgraph.graph.fixing  # noqa: F401

    if gcp_emulator:
        _demo_on_gcp_emulator(scenario, state_dir, approval, as_json, approver)
        return
    aim_or_exit(scenario, inventory, state_dir, None)  # a bad scenario name starts no server
    stack = local_stack(inventory, state_dir)
    err.print("[bold]1/3 local stack[/]")
    stack.up(progress=progress)
    err.print(f"[bold]2/3 injecting {escape(scenario)}[/]")
    progress(f"  {json.dumps(inject_scenario(scenario, inventory, state_dir, None))}")
    injected_at = time.time()  # the fault exists from here on: MTTD counts from now
    err.print("[bold]3/3 fixing[/]")
    records = run_fix(inventory, state_dir, approval, as_json, approver, fault_started_at=injected_at)
    if not any(record["resolved"] for record in records):
        raise typer.Exit(1)


def _demo_on_gcp_emulator(
    scenario_name: str, state_dir: Path, approval: ApprovalMode, as_json: bool, approver: str | None
) -> None:
    """The GCP demo: the eval scenario's system on the GCP emulator, its fault, and the fix, then teardown."""
    from opsgraph.evals.harness import HarnessError, inject, prepared
    from opsgraph.evals.scenario import ScenarioError, load_scenarios

    try:
        found = load_scenarios(names=[scenario_name])
    except ScenarioError as error:
        fail(str(error), 2)
    scenario = found[0]
    if scenario.tags.environment != "gcp":
        gcp = ", ".join(s.name for s in load_scenarios(tags=["gcp"]))
        fail(f"{scenario_name} is not a GCP scenario; --gcp-emulator runs one of: {gcp}", 2)
    folder = state_dir / "gcp-emulator-demo" / time.strftime("%Y%m%d-%H%M%S")
    err.print("[bold]1/3 GCP emulator[/] (local, emulated APIs; the data planes are real servers)")
    try:
        with prepared(scenario, folder) as run:
            progress(f"  inventory: {run.inventory_path}")
            err.print(f"[bold]2/3 injecting {escape(scenario_name)}[/]")
            for injected in inject(run):
                progress(f"  {json.dumps(injected)}")
            err.print("[bold]3/3 fixing[/]")
            records = run_fix(run.inventory_path, run.state_dir, approval, as_json, approver, run.injected_at)
    except HarnessError as error:
        fail(str(error), 1)
    if not any(record["resolved"] for record in records):
        raise typer.Exit(1)


@app.command(rich_help_panel="Incidents")
def watch(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    interval: Annotated[
        float, typer.Option(help="Seconds between probes of the inventory (> 0).", callback=positive_seconds)
    ] = 5.0,
    cooldown: Annotated[
        float,
        typer.Option(help="Seconds before a closed fingerprint may open again (>= 0).", callback=nonnegative_seconds),
    ] = 60.0,
) -> None:
    """Probe continuously; open one incident per new fault; risky plans wait for `opsgraph approve`.

    Logs go to stderr: readable on a terminal, one JSON object per event (ts, level, message) otherwise.
    """
    import signal
    import threading

    from opsgraph.graph.context import Context
    from opsgraph.graph.watch import Watcher, WatchSettings

    inventory_or_exit(inventory)
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = WatchSettings(interval_s=interval, cooldown_s=cooldown)
    events = EventLog()
    events.capture_logging()
    events.say(
        f"watching {inventory} every {interval:g} s (approval={approval.value}); SIGTERM or Ctrl-C stops",
        inventory=str(inventory),
        interval_s=interval,
        approval=approval.value,
    )
    Watcher(context, settings, say=events.say).run(stop)


def _decide(
    incident_id: str,
    decision: str,
    by: str | None,
    comment: str | None,
    digests: list[str] | None,
    inventory: Path,
    state_dir: Path,
    approval: ApprovalMode,
    server: str | None,
    change: str | None = None,
) -> None:
    """Answer a paused incident's approval request and run it on: here when this process's
    checkpoints hold it, else on the LangGraph server (`--server`) that paused it."""
    from opsgraph.graph.context import Context
    from opsgraph.graph.runtime import (
        IncidentBusy,
        NotWaiting,
        continue_incident,
        incident_graph,
        is_unfinished,
        pending_request,
        resume_incident,
    )

    inventory_or_exit(inventory)
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    with incident_graph(state_dir) as graph:
        request = pending_request(graph, incident_id)
        try:
            if request is not None:
                answer = _answer(request, decision, by, comment, digests, change)
                _show_result(request, resume_incident(graph, context, incident_id, answer, show_node))
                return
            if is_unfinished(graph, incident_id):  # a kill left it mid-graph, past its approval
                err.print(
                    f"{escape(incident_id)}: its worker died mid-graph; running it on from its checkpoint",
                    soft_wrap=True,
                )
                _show_outcome(continue_incident(graph, context, incident_id, show_node))
                return
        except (IncidentBusy, NotWaiting) as lost:  # another operator's answer (or a watcher) got there first
            err.print(f"[red]error:[/] {escape(str(lost))}; your {decision} was not applied", soft_wrap=True)
            raise typer.Exit(1) from None
    if server is not None and _decide_on_server(server, incident_id, decision, by, comment, digests, change):
        return
    record = context.ledger.incident(incident_id)
    status = record["status"] if record else "unknown incident"
    where = f" here or on {server}" if server else " here (paused on a LangGraph server? pass --server URL)"
    err.print(f"[red]error:[/] {escape(incident_id)} is not waiting for an approval{escape(where)} ({status})")
    raise typer.Exit(1)


def _answer(
    request: dict[str, Any],
    decision: str,
    by: str | None,
    comment: str | None,
    digests: list[str] | None,
    change: str | None,
) -> dict[str, Any]:
    """The answer to an approval request: bound to the digests of exactly the steps it shows.

    With `--digest`, the operator names what they reviewed (e.g. from an earlier listing, a
    ticket or the chat): anything else waiting is refused here, before an answer exists, so
    nothing is recorded and the incident stays pending.
    """
    import getpass

    shown = [step["digest"] for step in request["steps"]]
    for step in request["steps"]:
        err.print(
            f"{decision}: {escape(step['tool'])} {escape(json.dumps(step['args']))} ({step['risk']})"
            f" digest {escape(step['digest'])}"
        )
    if digests is not None and sorted(digests) != sorted(shown):
        err.print(
            f"[red]error:[/] --digest {escape(' '.join(digests))} is not what {escape(request['incident_id'])} waits on"
            f" ({escape(' '.join(shown))}): nothing recorded, the incident is still pending",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    answer = {"decision": decision, "by": by or getpass.getuser(), "digests": shown, "comment": comment}
    return answer if change is None else {**answer, "change": change}


def _show_result(request: dict[str, Any], result: RunResult) -> None:
    """What came of an answer: for a revise, the revised plan that waits; otherwise the run's summary."""
    pending = result.pending
    revised = pending is not None and pending.get("revision") and pending.get("plan_no") != request.get("plan_no")
    if pending is None or not revised:  # ran on (or ended), or the answer itself was refused
        _show_outcome(result)
        return
    incident_id = result.incident_id
    out.print(escape(f"{incident_id}: plan {pending['plan_no']}: {pending['question']}"), soft_wrap=True)
    for step in pending["steps"]:
        out.print(
            escape(f"  {step['tool']} {json.dumps(step['args'])} ({step['risk']}) digest {step['digest']}"),
            soft_wrap=True,
        )
    if pending.get("error"):  # the change was not applied: the same steps wait, and why
        err.print(f"[red]error:[/] {escape(pending['error'])}; {escape(incident_id)} still waits", soft_wrap=True)
        raise typer.Exit(1)
    digests = " ".join(f"--digest {step['digest']}" for step in pending["steps"])
    out.print(
        escape(f"{incident_id} waits for approval again: opsgraph approve {incident_id} {digests}"), soft_wrap=True
    )


def _show_outcome(result: RunResult) -> None:
    """The run's summary; an answer the graph refused (roles, expiry) is an error, and the incident still waits."""
    from opsgraph.graph.fixing import summary

    if result.pending is not None and result.pending.get("error"):
        reason = f"the answer was refused: {result.pending['error']}; {result.incident_id} is still pending"
        err.print(f"[red]error:[/] {escape(reason)}", soft_wrap=True)
        raise typer.Exit(1)
    _show_summary(summary(result))


def _decide_on_server(
    server: str,
    incident_id: str,
    decision: str,
    by: str | None,
    comment: str | None,
    digests: list[str] | None,
    change: str | None,
) -> bool:
    """Answer the incident on the LangGraph server that paused it; False when it does not wait there."""
    from opsgraph.graph.remote import RemoteError, pending_on_server, resume_on_server

    try:
        request = pending_on_server(server, incident_id)
        if request is None:
            return False
        result = resume_on_server(server, incident_id, _answer(request, decision, by, comment, digests, change))
    except RemoteError as error:  # an operator's error: one line, not a traceback
        err.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None
    _show_result(request, result)
    return True


DecisionBy = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user name).")]
DecisionComment = Annotated[str | None, typer.Option("--comment", help="Recorded with the decision.")]
DecisionDigest = Annotated[
    list[str] | None,
    typer.Option(
        "--digest",
        help="Approve only if these are exactly the digests of the waiting steps (repeat per step).",
    ),
]
DecisionServer = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="A LangGraph server (Studio, langgraph dev) that paused the incident (env OPSGRAPH_LANGGRAPH_URL).",
    ),
]


@app.command(rich_help_panel="Incidents")
def approve(
    incident_id: str,
    by: DecisionBy = None,
    comment: DecisionComment = None,
    digest: DecisionDigest = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    server: DecisionServer = None,
) -> None:
    """Approve the exact steps a paused incident waits on, then execute and verify them (here or on its server)."""
    # Typer gives an empty list for an option never given: that means "no --digest", not "no steps".
    _decide(incident_id, "approve", by, comment, digest or None, inventory, state_dir, approval, server)


@app.command(rich_help_panel="Incidents")
def reject(
    incident_id: str,
    by: DecisionBy = None,
    comment: DecisionComment = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    server: DecisionServer = None,
) -> None:
    """Reject a paused incident's plan; nothing runs and the incident closes as rejected."""
    _decide(incident_id, "reject", by, comment, None, inventory, state_dir, approval, server)


@app.command(rich_help_panel="Incidents")
def revise(
    incident_id: str,
    change: Annotated[
        str, typer.Argument(help="What to change, in words: 'only 128 MB', 'use TOOL instead', 'skip TOOL'.")
    ],
    by: DecisionBy = None,
    digest: DecisionDigest = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    server: DecisionServer = None,
) -> None:
    """Send a paused incident's plan back to the planner with a change; the revised plan is reviewed and waits again."""
    _decide(incident_id, "revise", by, None, digest or None, inventory, state_dir, approval, server, change)


@incidents_app.callback(invoke_without_command=True)
def incidents_list(ctx: typer.Context, state_dir: StateOption = Path(".opsgraph"), as_json: JsonOption = False) -> None:
    """List recent incidents (newest first)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = Ledger(state_dir / "ledger.sqlite").incidents()
    if as_json:
        print_json_lines(rows)
        return
    for row in rows:
        opened = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["opened_at"]))
        out.print(
            escape(f"{row['incident_id']:<48} {row['status']:<18} {row['resource']:<12} {row['symptom']:<24} {opened}")
        )


@incidents_app.command("alerts")
def incidents_alerts(
    state_dir: StateOption = Path(".opsgraph"),
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=500)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List the alerts `opsgraph serve` received (Alertmanager, webhooks) and what became of each."""
    rows = redact_value(Ledger(state_dir / "ledger.sqlite").alerts(limit))
    if as_json:
        print_json_lines(rows)
        return
    for row in rows:
        received = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["received_at"]))
        where = row["resource"] or "-"
        line = f"{received} {row['source']:<14} {row['name']:<24} {row['status']:<8} {where:<12} {row['outcome']:<13}"
        out.print(escape(f"{line} {row['incident_id'] or '-'}  {row['detail']}"), soft_wrap=True)


@incidents_app.command("release")
def incidents_release(
    incident_id: str,
    by: Annotated[str, typer.Option("--by", help="Who looked at the data and releases the resource.")],
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Release a resource held by a data-safety failure: OpsGraph may act on it again."""
    ledger = Ledger(state_dir / "ledger.sqlite")
    if not ledger.release(incident_id, by):
        record = ledger.incident(incident_id)
        status = record["status"] if record else "unknown incident"
        err.print(f"[red]error:[/] {escape(incident_id)} is not a held data-safety failure ({escape(status)})")
        raise typer.Exit(1)
    out.print(escape(f"{incident_id}: released by {by}; OpsGraph may act on its resource again"))


@incidents_app.command("show")
def incidents_show(incident_id: str, state_dir: StateOption = Path(".opsgraph"), as_json: JsonOption = False) -> None:
    """Show one incident's full record (report, approvals, actions) as JSON (indented; one line with --json)."""
    ledger = Ledger(state_dir / "ledger.sqlite")
    record = ledger.incident(incident_id)
    if record is None:
        fail(f"no incident {incident_id!r} in {ledger.path}")
    record["approvals"] = ledger.approvals(incident_id)
    record["actions"] = ledger.actions(incident_id)
    if as_json:
        print_json_lines([record])
    else:
        out.print_json(json.dumps(record, default=str))


@incidents_app.command("repair")
def incidents_repair(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    as_json: JsonOption = False,
) -> None:
    """Finish what a killed process left: settle steps in doubt, fix the ledger, run stopped incidents on.

    `watch` and `fix` do the same on start; this is the on-demand form (e.g. after a crash, without a watcher).
    """
    from opsgraph.graph.context import Context
    from opsgraph.graph.fixing import summary
    from opsgraph.graph.reconcile import reconcile
    from opsgraph.graph.runtime import IncidentBusy, continue_incident, incident_graph

    inventory_or_exit(inventory)
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    records: list[dict[str, Any]] = []
    with incident_graph(state_dir) as graph:
        repairs, unfinished = reconcile(graph, context)
        records += [{"incident_id": r.incident_id, "repair": r.action, "detail": r.detail} for r in repairs]
        for incident_id in unfinished:
            try:
                result = continue_incident(graph, context, incident_id, show_node)
            except IncidentBusy as busy:
                records.append({"incident_id": incident_id, "repair": "busy", "detail": str(busy)})
                continue
            records.append({"incident_id": incident_id, "repair": "resumed", "detail": summary(result)["outcome"]})
    if as_json:
        print_json_lines(records)
        return
    for record in records:
        out.print(escape(f"{record['incident_id']}: {record['repair']}: {record['detail']}"))
    if not records:
        out.print("nothing to repair: the ledger and the checkpoints agree")
