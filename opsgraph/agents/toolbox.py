"""The tools a model-backed reasoner sees, loaded over MCP with langchain-mcp-adapters.

OpsGraph's own catalogue is served read-only by a child `opsgraph mcp` process (so a
model can gather evidence but never act: acting is the executor's job, after the
policy engine), plus any extra MCP servers the inventory lists. Tool names carry
their server's name as a prefix so that two servers cannot shadow each other.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.sessions import Connection, StdioConnection, StreamableHttpConnection

from opsgraph.tools.inventory import McpServer, load_inventory

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

OWN_SERVER = "opsgraph"


def _extra(server: McpServer) -> Connection:
    if server.transport == "stdio":
        assert server.command is not None  # the inventory validates this
        return StdioConnection(transport="stdio", command=server.command, args=server.args)
    assert server.url is not None
    return StreamableHttpConnection(transport="streamable_http", url=server.url)


def connections(inventory_path: Path, state_dir: Path) -> dict[str, Connection]:
    own = StdioConnection(
        transport="stdio",
        command=sys.executable,
        args=["-m", "opsgraph", "mcp", "--transport", "stdio", "--access", "read",
              "--inventory", str(inventory_path), "--state-dir", str(state_dir)],
    )  # fmt: skip
    extra = {server.name: _extra(server) for server in load_inventory(inventory_path).mcp_servers}
    return {OWN_SERVER: own, **extra}


async def load_tools(inventory_path: Path, state_dir: Path) -> list[BaseTool]:
    """Every evidence tool: OpsGraph's read-only catalogue and the extra servers' tools."""
    client = MultiServerMCPClient(connections(inventory_path, state_dir), tool_name_prefix=True)
    return await client.get_tools()
