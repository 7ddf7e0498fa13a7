"""Commands about the tool catalogue: list it, serve it over MCP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from opsgraph.graph.cli.app import (
    InventoryOption,
    StateOption,
    app,
    inventory_or_exit,
)
from opsgraph.graph.console import err, out
from opsgraph.tools.spec import ToolContext


@app.command("tools", rich_help_panel="Tools")
def tools_command() -> None:
    """List the tool catalogue: name, target, risk, undo."""
    from rich.table import Table

    from opsgraph.tools.catalogue import CATALOGUE

    table = Table(title="OpsGraph tool catalogue")
    for column in ("tool", "acts on", "risk", "what it does", "undo"):
        table.add_column(column)
    for spec in sorted(CATALOGUE.values(), key=lambda s: s.name):
        where = f"any {spec.where} resource" if spec.environments else "any resource"
        target = str(spec.target_kind) if spec.target_kind else where
        table.add_row(spec.name, target, str(spec.risk), spec.description, spec.undo or "")
    out.print(table)


@app.command(rich_help_panel="Tools")
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
    ctx = ToolContext(inventory=inventory_or_exit(inventory), state_dir=state_dir)
    server = build_server(ctx, level, host=host, port=port)
    if transport == "http":
        err.print(f"serving OpsGraph tools ({level}) on http://{host}:{port}/mcp")
    server.run("streamable-http" if transport == "http" else "stdio")
