"""Commands for the local stack: up, down, status, scan, and shopper traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from opsgraph.cli.app import (
    InventoryOption,
    JsonOption,
    StateOption,
    app,
    inventory_or_exit,
    local_stack,
)
from opsgraph.cli.console import fail, out, print_json_lines, progress, scan_table
from opsgraph.tools.environments.external import ExternalEnvironment
from opsgraph.tools.environments.liveness import answers
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.probes import probe_all
from opsgraph.tools.snapshot import Health


@app.command(rich_help_panel="Local stack")
def up(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Start the local stack (real redis-server, PostgreSQL and nginx) described by the inventory."""
    for status in local_stack(inventory, state_dir).up(progress=progress):
        progress(f"  {status.name}: {'running' if status.running else 'NOT running'} on port {status.port}")


@app.command(rich_help_panel="Local stack")
def down(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Stop every local server started by `up`."""
    local_stack(inventory, state_dir).down(progress=progress)


# How `status` shows each state on a terminal (`--json` gives the state's name).
_STATE_TEXT = {
    "running": "[green]running[/]",
    "running_unmanaged": "[yellow]running (not managed by OpsGraph: another server holds the port)[/]",
    "stopped": "[red]stopped[/]",
    "not_answering": "[red]not answering[/]",
    "record_unreadable": "[red]record unreadable[/]",
}


@app.command(rich_help_panel="Local stack")
def status(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    as_json: JsonOption = False,
) -> None:
    """Show the servers: OpsGraph's own (pid, port, running) and the external ones it adopted."""
    rows = _server_rows(local_stack(inventory, state_dir))
    if as_json:
        print_json_lines(rows)
        return
    for row in rows:
        line = escape(f"{row['name']:<16} {row['kind']:<9} port {row['port']:<6} pid {row['pid'] or '-':<8} ")
        line += _STATE_TEXT[row["state"]]
        if row["lifecycle"] is not None:
            line += f" (not managed by OpsGraph; lifecycle: {row['lifecycle']})"
        if row["problem"] is not None:
            line += f": {escape(row['problem'])}"
        out.print(line, soft_wrap=True)


def _server_rows(stack: LocalStack) -> list[dict[str, Any]]:
    """One record per server: OpsGraph's own first, then the external ones (with their lifecycle)."""
    rows = []
    for item in stack.status():
        resource = stack.inventory.get(item.name) if stack.inventory.has(item.name) else None
        if item.problem is not None:
            state = "record_unreadable"
        elif item.running:
            state = "running"
        elif item.pid is None and resource is not None and answers(resource):
            state = "running_unmanaged"
        else:
            state = "stopped"
        rows.append(_server_row(item.name, item.kind, item.port, item.pid, state, None, item.problem))
    external = ExternalEnvironment(stack.inventory)
    for resource in stack.inventory.resources:
        if resource.environment is Environment.EXTERNAL:
            found = external.status(resource.name)
            state = "running" if found.running else "not_answering"
            port, lifecycle = resource.connection.port, str(resource.external.lifecycle)
            rows.append(_server_row(resource.name, resource.kind, port, found.pid, state, lifecycle, None))
    return rows


def _server_row(
    name: str, kind: str, port: int, pid: int | None, state: str, lifecycle: str | None, problem: str | None
) -> dict[str, Any]:
    managed = lifecycle is None
    return {"name": name, "kind": kind, "port": port, "pid": pid, "state": state, "managed_by_opsgraph": managed,
            "lifecycle": lifecycle, "problem": problem}  # fmt: skip


# `scan` exit statuses, for scripts and health checks (2 is also every usage or inventory error).
SCAN_HEALTHY, SCAN_UNHEALTHY = 0, 1


@app.command("scan", rich_help_panel="Local stack")
def scan_command(inventory: InventoryOption = Path("opsgraph.yaml"), as_json: JsonOption = False) -> None:
    """Probe every resource once and print a health table (with who runs each server).

    Exit status: 0 every resource healthy, 1 at least one degraded or failed, 2 bad usage or inventory.
    """
    resources = inventory_or_exit(inventory)
    snapshots = probe_all(resources)
    runners = {r.name: _runner_of(r) for r in resources.resources}
    if as_json:
        print_json_lines({**snap.model_dump(mode="json"), "run_by": runners[snap.resource]} for snap in snapshots)
    else:
        out.print(scan_table(snapshots, runners))
    if any(snap.health is not Health.HEALTHY for snap in snapshots):
        raise typer.Exit(SCAN_UNHEALTHY)


def _runner_of(resource: Resource) -> str:
    """Who starts and stops the server: OpsGraph itself, or someone else (and how OpsGraph may act)."""
    if resource.environment is Environment.LOCAL:
        return "OpsGraph (local)"
    if resource.environment is Environment.EXTERNAL:
        return f"not managed by OpsGraph (lifecycle: {resource.external.lifecycle})"
    if resource.gcp is not None:
        where = resource.gcp.zone or resource.gcp.region or "global"
        return f"GCP ({resource.gcp.project}/{where}/{resource.gcp.instance_name(resource.name)})"
    return str(resource.environment)


@app.command(rich_help_panel="Local stack")
def traffic(
    url: Annotated[
        str | None, typer.Option(help="Base URL (loopback only); default: the inventory's nginx, else its http app.")
    ] = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    rate: Annotated[float, typer.Option(help="Requests per second (at most 200).")] = 20.0,
    duration: Annotated[float, typer.Option(help="Seconds to run (at most 3600).")] = 30.0,
) -> None:
    """Send steady shopper traffic to the sample app so faults show in its metrics and logs."""
    from opsgraph.tools.traffic import TrafficPlan, generate_traffic

    target = url or _traffic_target(inventory)
    progress(f"sending about {rate:g} requests/s to {target} for {duration:g} s")
    stats = generate_traffic(TrafficPlan(base_url=target, rate_per_s=rate, duration_s=duration))
    latencies = sorted(stats.latencies_ms) or [0.0]
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(stats.statuses.items()))
    out.print(f"{stats.requests} requests ({statuses}); latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")


def _traffic_target(inventory_path: Path) -> str:
    """The shop as shoppers reach it: through the first nginx, else the first http resource directly."""
    resources = inventory_or_exit(inventory_path).resources
    for kind in (ResourceKind.NGINX, ResourceKind.HTTP):
        for resource in resources:
            if resource.kind is kind and resource.connection.port:
                return f"http://{resource.connection.host}:{resource.connection.port}"
    fail(f"{inventory_path} has no nginx or http resource: pass --url", 2)
