"""Commands for the local stack: up, down, status, scan, and shopper traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsgraph.graph.cli.app import (
    InventoryOption,
    StateOption,
    app,
    inventory_or_exit,
    local_stack,
)
from opsgraph.graph.console import err, out, scan_table
from opsgraph.tools.environments.external import ExternalEnvironment
from opsgraph.tools.environments.liveness import answers
from opsgraph.tools.inventory import Environment, Resource
from opsgraph.tools.probes import probe_all


@app.command(rich_help_panel="Local stack")
def up(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Start the local stack (real redis-server, PostgreSQL and nginx) described by the inventory."""
    for status in local_stack(inventory, state_dir).up(progress=err.print):
        err.print(f"  {status.name}: {'running' if status.running else 'NOT running'} on port {status.port}")


@app.command(rich_help_panel="Local stack")
def down(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Stop every local server started by `up`."""
    local_stack(inventory, state_dir).down(progress=err.print)


@app.command(rich_help_panel="Local stack")
def status(inventory: InventoryOption = Path("opsgraph.yaml"), state_dir: StateOption = Path(".opsgraph")) -> None:
    """Show the servers: OpsGraph's own (pid, port, running) and the external ones it adopted."""
    stack = local_stack(inventory, state_dir)
    for item in stack.status():
        resource = stack.inventory.get(item.name) if stack.inventory.has(item.name) else None
        if item.running:
            state = "[green]running[/]"
        elif item.pid is None and resource is not None and answers(resource):
            state = "[yellow]running (not managed by OpsGraph: another server holds the port)[/]"
        else:
            state = "[red]stopped[/]"
        line = f"{item.name:<16} {item.kind:<9} port {item.port:<6} pid {item.pid or '-':<8} {state}"
        out.print(line, soft_wrap=True)
    external = ExternalEnvironment(stack.inventory)
    for resource in stack.inventory.resources:
        if resource.environment is Environment.EXTERNAL:
            found = external.status(resource.name)
            state = "[green]running[/]" if found.running else "[red]not answering[/]"
            port = resource.connection.port
            how = f"lifecycle: {resource.external.lifecycle}"
            out.print(
                f"{resource.name:<16} {resource.kind:<9} port {port:<6} pid {found.pid or '-':<8} "
                f"{state} (not managed by OpsGraph; {how})",
                soft_wrap=True,
            )


@app.command("scan", rich_help_panel="Local stack")
def scan_command(inventory: InventoryOption = Path("opsgraph.yaml")) -> None:
    """Probe every resource once and print a health table (with who runs each server)."""
    resources = inventory_or_exit(inventory)
    out.print(scan_table(probe_all(resources), {r.name: _runner_of(r) for r in resources.resources}))


def _runner_of(resource: Resource) -> str:
    """Who starts and stops the server: OpsGraph itself, or someone else (and how OpsGraph may act)."""
    if resource.environment is Environment.LOCAL:
        return "OpsGraph (local)"
    if resource.environment is Environment.EXTERNAL:
        return f"not managed by OpsGraph (lifecycle: {resource.external.lifecycle})"
    return str(resource.environment)


@app.command(rich_help_panel="Local stack")
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
