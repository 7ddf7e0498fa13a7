"""Commands about the tool catalogue: list it, serve it over MCP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from opsgraph.cli.app import (
    InventoryOption,
    JsonOption,
    StateOption,
    app,
    inventory_or_exit,
)
from opsgraph.cli.console import err, out, print_json_lines
from opsgraph.tools.spec import ToolContext


@app.command("tools", rich_help_panel="Tools")
def tools_command(as_json: JsonOption = False) -> None:
    """List the tool catalogue: name, target, risk, undo."""
    from rich.table import Table

    from opsgraph.tools.catalogue import CATALOGUE

    specs = sorted(CATALOGUE.values(), key=lambda s: s.name)
    if as_json:
        print_json_lines(spec.record() for spec in specs)
        return
    table = Table(title="OpsGraph tool catalogue")
    for column in ("tool", "acts on", "risk", "what it does", "undo"):
        table.add_column(column)
    for spec in specs:
        where = f"any {spec.where} resource" if spec.environments else "any resource"
        target = str(spec.target_kind) if spec.target_kind else where
        table.add_row(
            *(escape(cell) for cell in (spec.name, target, str(spec.risk), spec.description, spec.undo or ""))
        )
    out.print(table)


@app.command(rich_help_panel="Tools")
def mcp(
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP at /mcp).")] = "stdio",
    access: Annotated[str, typer.Option(help="Riskiest tools served: read, safe or all.")] = "read",
    host: Annotated[str, typer.Option(help="HTTP listen address (loopback unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.", min=1, max=65535)] = 8765,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (needs OPSGRAPH_MCP_TOKEN).")
    ] = False,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Serve the tool catalogue over MCP. No human approves MCP calls: mutating tools need --access.

    Over HTTP, OPSGRAPH_MCP_TOKEN (a setting, never a flag: argv is visible to every local
    user) is the bearer token every request must carry; it is required above --access read.
    """
    from opsgraph.mcp_server import Access, build_server, http_refusal
    from opsgraph.settings import load_settings

    if transport not in ("stdio", "http"):
        err.print(f"[red]error:[/] transport must be stdio or http, got {escape(transport)}")
        raise typer.Exit(2)
    try:
        level = Access(access)
    except ValueError:
        err.print(f"[red]error:[/] access must be read, safe or all, got {escape(access)}")
        raise typer.Exit(2) from None
    token = load_settings().mcp_token if transport == "http" else None
    if transport == "http" and (refusal := http_refusal(host, level, token, allow_remote)):
        err.print(f"[red]error:[/] {escape(refusal)}", soft_wrap=True)
        raise typer.Exit(2)
    ctx = ToolContext(inventory=inventory_or_exit(inventory), state_dir=state_dir)
    server = build_server(ctx, level, host=host, port=port, token=token)
    if transport == "http":
        guard = "bearer token required" if token is not None else "no token: read-only, loopback only"
        err.print(escape(f"serving OpsGraph tools ({level}) on http://{host}:{port}/mcp ({guard})"))
    server.run("streamable-http" if transport == "http" else "stdio")
