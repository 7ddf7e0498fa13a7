"""MCP tools for reasoning, loaded with langchain-mcp-adapters; server names prefix tool names.

Two uses. `load_tools` gives any LangChain agent OpsGraph's own catalogue, served
read-only by a child `opsgraph mcp` process, plus the inventory's extra servers.
`load_server_tools` loads one extra server only: the model backend reads the
catalogue in process and takes the inventory's `mcp_servers` from here, as extra
evidence. Prefixes (`docs_search`) keep two servers from shadowing each other.
MCP is async and the reasoning loop is not: `run_sync` bridges the two.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.sessions import Connection, StdioConnection, StreamableHttpConnection

from opsgraph.tools.inventory import McpServer, load_inventory

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

OWN_SERVER = "opsgraph"

T = TypeVar("T")


def _connection(server: McpServer) -> Connection:
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
    extra = {server.name: _connection(server) for server in load_inventory(inventory_path).mcp_servers}
    return {OWN_SERVER: own, **extra}


async def load_tools(inventory_path: Path, state_dir: Path) -> list[BaseTool]:
    """Every evidence tool: OpsGraph's read-only catalogue and the extra servers' tools."""
    client = MultiServerMCPClient(connections(inventory_path, state_dir), tool_name_prefix=True)
    return await client.get_tools()


async def load_server_tools(server: McpServer) -> list[BaseTool]:
    """One extra server's tools, prefixed; a failed call raises (`ToolException`) instead of passing as text.

    Each tool opens its own session per call (a stdio server is started for it), so
    the tools outlive this coroutine and its event loop.
    """
    client = MultiServerMCPClient({server.name: _connection(server)}, tool_name_prefix=True, handle_tool_errors=False)
    return await client.get_tools()


def run_sync(coroutine: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Await `coroutine()` from sync code, bounded: its own event loop in a helper thread.

    A helper thread because the caller may already run inside an event loop (a graph
    invoked from async code), where `asyncio.run` is refused.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine(), timeout_s)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp") as pool:
        return pool.submit(asyncio.run, bounded()).result()
