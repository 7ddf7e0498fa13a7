"""The `opsgraph` command line: run the local stack, scan, inject faults, fix, and look back."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from opsgraph.agents.models import ModelConfigError
from opsgraph.graph.console import err, out, scan_table, show_node, show_report, terminal_approver
from opsgraph.graph.ledger import Ledger
from opsgraph.graph.policy import ApprovalMode
from opsgraph.graph.tracing import configure_tracing
from opsgraph.tools.binaries import MissingBinaryError
from opsgraph.tools.environments import UnsupportedEnvironment
from opsgraph.tools.environments.local import LocalStack, LocalStackError
from opsgraph.tools.faults import SCENARIOS, UnknownScenario, scenario_named, target_of
from opsgraph.tools.inventory import Inventory, InventoryError, load_inventory
from opsgraph.tools.probes import probe_all
from opsgraph.tools.spec import ToolContext, ToolError
from opsgraph.tools.traffic import TrafficError

# Failures an operator can act on: shown as one clear line, not a traceback.
OPERATOR_ERRORS = (
    InventoryError,
    LocalStackError,
    MissingBinaryError,
    ToolError,
    UnsupportedEnvironment,
    TrafficError,
    ModelConfigError,
    KeyError,
)

app = typer.Typer(
    help="OpsGraph: an autonomous on-call SRE.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
incidents_app = typer.Typer(help="List and show incidents from the ledger.", no_args_is_help=False)
app.add_typer(incidents_app, name="incidents")

SCENARIO_HELP = "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())

InventoryOption = Annotated[
    Path, typer.Option("--inventory", "-i", envvar="OPSGRAPH_INVENTORY", help="Inventory file.")
]
StateOption = Annotated[
    Path, typer.Option("--state-dir", envvar="OPSGRAPH_HOME", help="Ledger, checkpoints and local servers.")
]
ApprovalOption = Annotated[
    ApprovalMode, typer.Option("--approval", help="Which steps wait for a human: risky, all or none.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per incident on stdout.")]
ApproverOption = Annotated[str | None, typer.Option("--approver", help="Name recorded with approvals.")]


def _inventory(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as error:
        err.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


def _stack(inventory: Path, state_dir: Path) -> LocalStack:
    return LocalStack(state_dir, _inventory(inventory))


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    configure_tracing()


@app.command()
def up(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Start the local stack (real redis-server, PostgreSQL and nginx) described by the inventory."""
    for status in _stack(inventory, state_dir).up(progress=err.print):
        err.print(f"  {status.name}: {'running' if status.running else 'NOT running'} on port {status.port}")


@app.command()
def down(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Stop every local server started by `up`."""
    _stack(inventory, state_dir).down(progress=err.print)


@app.command()
def status(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Show the local servers: pid, port, running."""
    for item in _stack(inventory, state_dir).status():
        state = "[green]running[/]" if item.running else "[red]stopped[/]"
        out.print(f"{item.name:<16} {item.kind:<9} port {item.port:<6} pid {item.pid or '-':<8} {state}")


@app.command("scan")
def scan_command(inventory: InventoryOption = Path("opsgraph.yaml")) -> None:
    """Probe every resource once and print a health table."""
    out.print(scan_table(probe_all(_inventory(inventory))))


def _inject(scenario_name: str, inventory_path: Path, state_dir: Path, resource: str | None) -> dict[str, Any]:
    try:
        scenario = scenario_named(scenario_name)
        inventory = _inventory(inventory_path)
        target = target_of(scenario, inventory, resource)
    except (UnknownScenario, ValueError) as error:
        err.print(f"[red]{escape(str(error.args[0]))}[/]")
        raise typer.Exit(2) from None
    return {"resource": target.name, **scenario.inject(target, ToolContext(inventory=inventory, state_dir=state_dir))}


@app.command()
def inject(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    resource: Annotated[str | None, typer.Option(help="Target resource (default: the first of its kind).")] = None,
) -> None:
    """Inject a real fault into a real target (see the scenario list in --help)."""
    result = _inject(scenario, inventory, state_dir, resource)
    err.print(f"injected {scenario}: {json.dumps(result)}")


@app.command()
def reset(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    resource: Annotated[str | None, typer.Option(help="Target resource (default: the first of its kind).")] = None,
) -> None:
    """Take an injected fault away again (ballast, held sessions, connection holders)."""
    try:
        chosen = scenario_named(scenario)
        loaded = _inventory(inventory)
        target = target_of(chosen, loaded, resource)
    except (UnknownScenario, ValueError) as error:
        err.print(f"[red]{escape(str(error.args[0]))}[/]")
        raise typer.Exit(2) from None
    if chosen.reset is None:
        err.print(f"{scenario} has nothing to reset: fixing the incident ends it")
        return
    result = chosen.reset(target, ToolContext(inventory=loaded, state_dir=state_dir))
    err.print(f"reset {scenario} on {target.name}: {json.dumps(result, default=str)}")


def _run_fix(
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

    _inventory(inventory)  # fail early and clearly on a bad file
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    results = fix_all(context, terminal_approver(approver), show_node, fault_started_at)
    summaries = [summary(result) for result in results]
    for record in summaries:
        if as_json:
            print(json.dumps(record, default=str), flush=True)
        elif "fingerprint" in record:  # a full incident report
            show_report(record)
        else:
            out.print(escape(f"{record['incident_id']}: {record['outcome']} {record.get('outcome_detail') or ''}"))
    if not summaries:
        err.print("every resource is healthy: nothing to fix")
    return summaries


@app.command()
def fix(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    as_json: JsonOption = False,
    approver: ApproverOption = None,
) -> None:
    """Scan, then run one incident graph per unhealthy resource (asking here before risky steps)."""
    _run_fix(inventory, state_dir, approval, as_json, approver)


@app.command()
def demo(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    as_json: JsonOption = False,
    approver: ApproverOption = None,
) -> None:
    """Bring up the local stack, inject the fault, and fix it: detect → diagnose → approve → fix → verify."""
    # Load the graph machinery before the fault exists, so MTTD measures detection, not imports.
    import opsgraph.graph.fixing  # noqa: F401

    stack = _stack(inventory, state_dir)
    err.print("[bold]1/3 local stack[/]")
    stack.up(progress=err.print)
    err.print(f"[bold]2/3 injecting {scenario}[/]")
    err.print(f"  {json.dumps(_inject(scenario, inventory, state_dir, None))}")
    injected_at = time.time()  # the fault exists from here on: MTTD counts from now
    err.print("[bold]3/3 fixing[/]")
    records = _run_fix(inventory, state_dir, approval, as_json, approver, fault_started_at=injected_at)
    if not any(record["resolved"] for record in records):
        raise typer.Exit(1)


@app.command()
def traffic(
    url: Annotated[str, typer.Option(help="Base URL of the sample app (loopback only).")] = "http://127.0.0.1:18080",
    rate: Annotated[float, typer.Option(help="Requests per second (at most 200).")] = 20.0,
    duration: Annotated[float, typer.Option(help="Seconds to run (at most 3600).")] = 30.0,
) -> None:
    """Send steady shopper traffic to the sample app so faults show in its metrics and logs."""
    from opsgraph.tools.traffic import TrafficPlan, generate_traffic

    err.print(f"sending about {rate:g} requests/s to {url} for {duration:g} s")
    stats = generate_traffic(TrafficPlan(base_url=url, rate_per_s=rate, duration_s=duration))
    latencies = sorted(stats.latencies_ms) or [0.0]
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(stats.statuses.items()))
    out.print(f"{stats.requests} requests ({statuses}); latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")


@app.command("tools")
def tools_command() -> None:
    """List the tool catalogue: name, target, risk, undo."""
    from rich.table import Table

    from opsgraph.tools.catalogue import CATALOGUE

    table = Table(title="OpsGraph tool catalogue")
    for column in ("tool", "acts on", "risk", "what it does", "undo"):
        table.add_column(column)
    for spec in sorted(CATALOGUE.values(), key=lambda s: s.name):
        where = f"any {spec.environment} resource" if spec.environment else "any resource"
        target = str(spec.target_kind) if spec.target_kind else where
        table.add_row(spec.name, target, str(spec.risk), spec.description, spec.undo or "")
    out.print(table)


@app.command()
def mcp(
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP at /mcp).")] = "stdio",
    access: Annotated[str, typer.Option(help="Riskiest tools served: read, safe or all.")] = "read",
    host: Annotated[str, typer.Option(help="HTTP listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8765,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Serve the tool catalogue over MCP. No human approves MCP calls: mutating tools need --access."""
    from opsgraph.tools.mcp_server import Access, build_server

    if transport not in ("stdio", "http"):
        err.print(f"[red]error:[/] transport must be stdio or http, got {escape(transport)}")
        raise typer.Exit(2)
    try:
        level = Access(access)
    except ValueError:
        err.print(f"[red]error:[/] access must be read, safe or all, got {escape(access)}")
        raise typer.Exit(2) from None
    ctx = ToolContext(inventory=_inventory(inventory), state_dir=state_dir)
    server = build_server(ctx, level, host=host, port=port)
    if transport == "http":
        err.print(f"serving OpsGraph tools ({level}) on http://{host}:{port}/mcp")
    server.run("streamable-http" if transport == "http" else "stdio")


@app.command()
def watch(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    interval: Annotated[float, typer.Option(help="Seconds between probes of the inventory.")] = 5.0,
    cooldown: Annotated[float, typer.Option(help="Seconds before a closed fingerprint may open again.")] = 60.0,
) -> None:
    """Probe continuously; open one incident per new fault; risky plans wait for `opsgraph approve`."""
    import signal
    import threading

    from opsgraph.graph.context import Context
    from opsgraph.graph.watch import Watcher, WatchSettings

    _inventory(inventory)
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = WatchSettings(interval_s=interval, cooldown_s=cooldown)
    err.print(f"watching {inventory} every {interval:g} s (approval={approval.value}); SIGTERM or Ctrl-C stops")
    Watcher(context, settings, say=lambda text: err.print(escape(text), highlight=False), on_node=show_node).run(stop)


def _decide(
    incident_id: str,
    decision: str,
    by: str | None,
    comment: str | None,
    inventory: Path,
    state_dir: Path,
    approval: ApprovalMode,
) -> None:
    """Answer a paused incident's approval request from this process and run it on."""
    import getpass

    from opsgraph.graph.context import Context
    from opsgraph.graph.fixing import summary
    from opsgraph.graph.runtime import incident_graph, pending_request, resume_incident

    _inventory(inventory)
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    with incident_graph(state_dir) as graph:
        request = pending_request(graph, incident_id)
        if request is None:
            record = context.ledger.incident(incident_id)
            status = record["status"] if record else "unknown incident"
            err.print(f"[red]error:[/] {escape(incident_id)} is not waiting for an approval ({status})")
            raise typer.Exit(1)
        answer = {
            "decision": decision,
            "by": by or getpass.getuser(),
            "digests": [step["digest"] for step in request["steps"]],
            "comment": comment,
        }
        for step in request["steps"]:
            err.print(f"{decision}: {escape(step['tool'])} {escape(json.dumps(step['args']))} ({step['risk']})")
        result = resume_incident(graph, context, incident_id, answer, show_node)
    record = summary(result)
    if "fingerprint" in record:
        show_report(record)
    else:
        out.print(escape(f"{incident_id}: {record['outcome']}"))


DecisionBy = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user name).")]
DecisionComment = Annotated[str | None, typer.Option("--comment", help="Recorded with the decision.")]


@app.command()
def approve(
    incident_id: str,
    by: DecisionBy = None,
    comment: DecisionComment = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
) -> None:
    """Approve the exact steps a paused incident waits on, then execute and verify them here."""
    _decide(incident_id, "approve", by, comment, inventory, state_dir, approval)


@app.command()
def reject(
    incident_id: str,
    by: DecisionBy = None,
    comment: DecisionComment = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
) -> None:
    """Reject a paused incident's plan; nothing runs and the incident closes as rejected."""
    _decide(incident_id, "reject", by, comment, inventory, state_dir, approval)


@incidents_app.callback(invoke_without_command=True)
def incidents_list(ctx: typer.Context, state_dir: StateOption = Path(".opsgraph")) -> None:
    """List recent incidents."""
    if ctx.invoked_subcommand is not None:
        return
    for row in Ledger(state_dir / "ledger.sqlite").incidents():
        opened = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["opened_at"]))
        out.print(f"{row['incident_id']:<48} {row['status']:<18} {row['resource']:<12} {row['symptom']:<24} {opened}")


@incidents_app.command("show")
def incidents_show(incident_id: str, state_dir: StateOption = Path(".opsgraph")) -> None:
    """Show one incident's full record (report, approvals, actions) as JSON."""
    ledger = Ledger(state_dir / "ledger.sqlite")
    record = ledger.incident(incident_id)
    if record is None:
        err.print(f"[red]no incident {incident_id!r} in {ledger.path}[/]")
        raise typer.Exit(1)
    record["approvals"] = ledger.approvals(incident_id)
    record["actions"] = ledger.actions(incident_id)
    out.print_json(json.dumps(record, default=str))


def run() -> None:
    """Entry point of the `opsgraph` command."""
    try:
        app()
    except OPERATOR_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        err.print(f"[red]error:[/] {message}", highlight=False)
        raise SystemExit(1) from None
