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
    """Show the local servers: pid, port, running."""
    for item in local_stack(inventory, state_dir).status():
        state = "[green]running[/]" if item.running else "[red]stopped[/]"
        out.print(f"{item.name:<16} {item.kind:<9} port {item.port:<6} pid {item.pid or '-':<8} {state}")


@app.command("scan", rich_help_panel="Local stack")
def scan_command(inventory: InventoryOption = Path("opsgraph.yaml")) -> None:
    """Probe every resource once and print a health table."""
    out.print(scan_table(probe_all(inventory_or_exit(inventory))))


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
